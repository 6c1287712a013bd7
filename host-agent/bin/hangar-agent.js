#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2 --memory-reducer-single-gc
// The `hangar-agent` command. Built output lives in host-agent/dist (`npm run build`).
// The shebang's environment and flags are AGENT_ENV and AGENT_NODE_FLAGS in
// shared/src/agent-runtime.ts; keep them equal (host-agent/test/bin.test.ts checks).
import('../dist/cli.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('hangar-agent: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw error;
});
