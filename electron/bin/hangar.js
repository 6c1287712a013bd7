#!/usr/bin/env node
// The `hangar` command. Built output lives in electron/cli/dist (`npm run build`).
import('../cli/dist/main.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('hangar: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw error;
});
