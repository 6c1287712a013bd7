#!/usr/bin/env node
// The install step of @hangar/lane (`npm ci`, `npm rebuild @hangar/lane`): builds lane.node with
// `node-gyp rebuild`, as npm's default for a binding.gyp would. Where it does not build (no C
// compiler, a platform the C does not support yet) the install goes on with a warning, since the
// agent and the app carry on without lanes (loadNativeLanes() answers { unavailable }, and bytes go
// through the link's streams). HANGAR_REQUIRE_LANES=1 makes the failure fail the install (CI).
//
// npm shows an install step's output only when it fails (or with --foreground-scripts), so the
// warning is also left in build/install-failed.txt, and the repo's postinstall (which npm shows)
// prints it with `node lane/install.mjs --report`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const NOTE = fileURLToPath(new URL('build/install-failed.txt', import.meta.url));
const ADDON = fileURLToPath(new URL('build/Release/lane.node', import.meta.url));

if (process.argv[2] === '--report') {
  let note;
  try {
    note = readFileSync(NOTE, 'utf8');
  } catch {
    process.exit(0); // built (or never tried): nothing to say
  }
  process.stderr.write(note);
  process.exit(0);
}

const required = process.env.HANGAR_REQUIRE_LANES === '1';
// npm puts node-gyp on PATH for install scripts (the package's own, else npm's bundled one).
const gyp = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (gyp.status === 0) {
  rmSync(NOTE, { force: true });
  process.exit(0);
}

// node-gyp rebuild removes build/ before it builds, but not when it could not start (or was stopped
// before that): an earlier build's lane.node would then load under this checkout's JavaScript, and
// "lanes are off" below would not be true.
rmSync(ADDON, { force: true });

const what = gyp.error
  ? `node-gyp could not run (${gyp.error.message})`
  : gyp.signal
    ? `node-gyp rebuild was stopped by ${gyp.signal}`
    : `node-gyp rebuild exited with ${gyp.status}`;
const lines = [
  '',
  `@hangar/lane: the native relay of lanes (lane.node) did not build: ${what}.`,
  required
    ? 'HANGAR_REQUIRE_LANES=1 makes this fatal: the install fails.'
    : 'The install goes on and lanes are off: Hangar works without them, but previews, terminals, ' +
      'artifact downloads and logs then travel over the link streams, where JavaScript handles every ' +
      'byte (slower downloads, and keystrokes may wait behind them).',
  'To build it: install python3, make and a C/C++ compiler (Debian/Ubuntu: `sudo apt install ' +
    'build-essential python3`; macOS: `xcode-select --install`), then run ' +
    "`npm rebuild @hangar/lane --foreground-scripts` where you ran npm ci (npm shows the build's " +
    'output only with --foreground-scripts).',
  ...(required ? [] : ['Set HANGAR_REQUIRE_LANES=1 to make this failure fail the install (as CI should).']),
  '',
];
const text = lines.join('\n');
process.stderr.write(text);
if (!required) {
  try {
    mkdirSync(fileURLToPath(new URL('build/', import.meta.url)), { recursive: true });
    writeFileSync(NOTE, text);
  } catch {
    // Only the repeat under npm's own output is lost: the warning above stands.
  }
}
process.exit(required ? (gyp.status ?? 1) || 1 : 0);
