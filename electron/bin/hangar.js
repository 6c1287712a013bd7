#!/usr/bin/env node
// The `hangar` command. `npm run build` makes electron/cli/dist (tsc) and from it
// electron/cli/bundle (esbuild: one CommonJS file per command, so it starts fast). The bundle runs
// unless it is missing or older than the tsc output it came from (tsc -b alone after a change):
// then dist runs, slower to start but current. This file is CommonJS (package.json beside it):
// requiring the bundle then loads no ES module machinery at all (issue 18).
'use strict';
const { statSync } = require('node:fs');
const { join } = require('node:path');

const modified = (path) => statSync(join(__dirname, path), { throwIfNoEntry: false })?.mtimeMs;
const bundled = modified('../cli/bundle/main.cjs');
const built = ['../cli/tsconfig.tsbuildinfo', '../core/tsconfig.tsbuildinfo', '../../shared/tsconfig.tsbuildinfo']
  .map(modified)
  .filter((time) => time !== undefined);

if (bundled !== undefined && built.every((time) => time <= bundled)) require('../cli/bundle/main.cjs');
else
  import('../cli/dist/main.js').catch((error) => {
    if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
      process.stderr.write('hangar: not built yet; run: npm run build\n');
      process.exit(1);
    }
    throw error;
  });
