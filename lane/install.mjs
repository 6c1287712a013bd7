#!/usr/bin/env node
// The install step of @hangar/lane (`npm ci`, `npm rebuild @hangar/lane`): builds lane.node with
// `node-gyp rebuild`, as npm's default for a binding.gyp would. Where it does not build (no C
// compiler, a platform the C does not support yet) the install goes on with a warning, since the
// agent and the app carry on without lanes (loadNativeLanes() answers { unavailable }, and bytes go
// through the link's streams). HANGAR_REQUIRE_LANES=1 makes the failure fail the install (CI).
import { spawnSync } from 'node:child_process';

const required = process.env.HANGAR_REQUIRE_LANES === '1';
// npm puts node-gyp on PATH for install scripts (the package's own, else npm's bundled one).
const gyp = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (gyp.status === 0) process.exit(0);

const what = gyp.error
  ? `node-gyp could not run (${gyp.error.message})`
  : gyp.signal
    ? `node-gyp rebuild was stopped by ${gyp.signal}`
    : `node-gyp rebuild exited with ${gyp.status} (its output is above)`;
const lines = [
  '',
  `@hangar/lane: the native relay of lanes (lane.node) did not build: ${what}.`,
  required
    ? 'HANGAR_REQUIRE_LANES=1 makes this fatal: the install fails.'
    : 'The install goes on and lanes are off: Hangar works without them, but previews, terminals, ' +
      'artifact downloads and logs then travel over the link streams, where JavaScript handles every ' +
      'byte (slower downloads, and keystrokes may wait behind them).',
  'To build it: install python3, make and a C/C++ compiler (Debian/Ubuntu: `sudo apt install ' +
    'build-essential python3`; macOS: `xcode-select --install`), then run `npm rebuild @hangar/lane` ' +
    'where you ran npm ci.',
  ...(required ? [] : ['Set HANGAR_REQUIRE_LANES=1 to make this failure fail the install (as CI should).']),
  '',
];
process.stderr.write(lines.join('\n'));
process.exit(required ? (gyp.status ?? 1) || 1 : 0);
