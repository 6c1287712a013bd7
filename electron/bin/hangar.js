#!/usr/bin/env node
// The `hangar` command. `npm run build` makes electron/cli/dist (tsc) and from it
// electron/cli/bundle (esbuild: a few files instead of hundreds, so it starts fast). The bundle
// runs unless it is missing or older than the tsc output it came from (tsc -b alone after a
// change): then dist runs, slower to start but current.
import { statSync } from 'node:fs';

const at = (path) => new URL(path, import.meta.url);
const modified = (path) => statSync(at(path), { throwIfNoEntry: false })?.mtimeMs;
const bundled = modified('../cli/bundle/main.js');
const built = ['../cli/tsconfig.tsbuildinfo', '../core/tsconfig.tsbuildinfo', '../../shared/tsconfig.tsbuildinfo']
  .map(modified)
  .filter((time) => time !== undefined);
const entry =
  bundled !== undefined && built.every((time) => time <= bundled) ? '../cli/bundle/main.js' : '../cli/dist/main.js';

import(entry).catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('hangar: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw error;
});
