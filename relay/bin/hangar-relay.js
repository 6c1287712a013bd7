#!/usr/bin/env node
// The `hangar-relay` command. Built output lives in relay/dist (`npm run build`).
import('../dist/cli.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    process.stderr.write('hangar-relay: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw error;
});
