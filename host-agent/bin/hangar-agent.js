#!/usr/bin/env node
// The `hangar-agent` command. Built output lives in host-agent/dist (`npm run build`).
import('../dist/cli.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('hangar-agent: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw error;
});
