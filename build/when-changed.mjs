#!/usr/bin/env node
// Runs a build step only when what it reads or what it made has changed since it last succeeded:
// `npm test` builds again right after `npm ci`'s prepare built, and of the build only `tsc -b` was
// incremental; the CLI bundle (esbuild) and the renderer (tsc + vite) took ~15-35 s each time for
// the same output.
//
//   node build/when-changed.mjs <step>     (steps: below; `npm run build` runs each after tsc -b)
//
// Skipping is decided by content, not by mtimes (a checkout, a copy or a `touch` changes mtimes
// and nothing else; a restored file can have an old mtime): a SHA-256 over every input file's path
// and bytes, and another over the outputs. A step is skipped only if both equal what was recorded
// when it last succeeded, so a changed source, a deleted or hand-edited output, a different
// lockfile or Node version each build again. Installed packages count by their lockfile
// (node_modules/.package-lock.json, which npm rewrites on every install), not by their files.
// HANGAR_BUILD_FORCE=1 always builds. The record is kept in node_modules/.cache/hangar-build/,
// which `npm ci` removes with node_modules.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RECORDS = join(ROOT, 'node_modules', '.cache', 'hangar-build');
const LOCKFILES = ['package-lock.json', 'node_modules/.package-lock.json'];

/** Never inputs, wherever they are: what a build or an install writes. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'bundle']);

const STEPS = {
  'cli-bundle': {
    command: 'node build/cli-bundle/bundle.mjs',
    // bundle.mjs reads the tsc output of the CLI, of the core (core.cjs: all of it), of lane and
    // of shared, electron/package.json (the version) and the packages it bundles (their lockfile).
    inputs: [
      'build/cli-bundle',
      'electron/cli/dist',
      'electron/core/dist',
      'lane/dist',
      'shared/dist',
      'electron/package.json',
      ...LOCKFILES,
    ],
    outputs: ['electron/cli/bundle'],
    /**
     * electron/bin/hangar.js runs the bundle only if main.cjs is newer than each tsbuildinfo (else
     * the tsc output, as after a bare `tsc -b`): a tsc -b that rewrote them must be followed by a
     * build, even if its output came out the same.
     */
    current: () => {
      const bundled = mtime('electron/cli/bundle/main.cjs');
      return (
        bundled !== undefined &&
        ['electron/cli', 'electron/core', 'shared'].every(
          (project) => (mtime(`${project}/tsconfig.tsbuildinfo`) ?? 0) <= bundled,
        )
      );
    },
  },
  renderer: {
    command: 'npm run build -w @hangar/renderer',
    // Everything in renderer/ but its output (sources, tests, which its tsc checks, index.html,
    // vite and tsc configs, .env files vite reads), the shared tsconfig, shared's tsc output (the
    // renderer imports @hangar/shared's dist) and the packages.
    inputs: ['renderer', 'tsconfig.base.json', 'shared/dist', ...LOCKFILES],
    outputs: ['renderer/dist'],
    current: () => true,
  },
};

function mtime(path) {
  return statSync(join(ROOT, path), { throwIfNoEntry: false })?.mtimeMs;
}

/** Every file under `paths` (files or directories), sorted, as paths relative to the root. */
function filesUnder(paths, skipDirs) {
  const found = [];
  const visit = (path, top) => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat === undefined) return;
    if (!stat.isDirectory()) found.push(relative(ROOT, path));
    else if (top || !skipDirs || !SKIPPED_DIRS.has(basename(path)))
      for (const entry of readdirSync(path)) visit(join(path, entry), false);
  };
  for (const path of paths) visit(join(ROOT, path), true);
  return found.sort();
}

/** A hash over each file's path and bytes (a file renamed, added or removed changes it too). */
function digest(files, extra) {
  const hash = createHash('sha256').update(JSON.stringify(extra));
  for (const file of files) {
    const bytes = readFileSync(join(ROOT, file));
    hash.update(`${file}\0${bytes.length}\0`).update(bytes);
  }
  return hash.digest('hex');
}

const name = process.argv[2];
const step = STEPS[name];
if (step === undefined) {
  process.stderr.write(`when-changed: no step "${name}"; the steps are: ${Object.keys(STEPS).join(', ')}\n`);
  process.exit(2);
}

// What else decides the output: the command, the Node that runs the build, and the environment a
// build reads (NODE_ENV, vite's VITE_*).
const setting = {
  command: step.command,
  node: process.version,
  env: Object.entries(process.env)
    .filter(([key]) => key === 'NODE_ENV' || key.startsWith('VITE_'))
    .sort(),
};
const inputsNow = () => digest(filesUnder(step.inputs, true), setting);
const outputsNow = () => {
  const files = filesUnder(step.outputs, false);
  return files.length === 0 ? undefined : digest(files, {});
};
const recordPath = join(RECORDS, `${name}.json`);

const recorded = existsSync(recordPath) ? JSON.parse(readFileSync(recordPath, 'utf8')) : undefined;
const inputs = inputsNow();
if (
  process.env['HANGAR_BUILD_FORCE'] !== '1' &&
  recorded?.inputs === inputs &&
  recorded.outputs !== undefined &&
  recorded.outputs === outputsNow() &&
  step.current()
) {
  process.stdout.write(`${name}: up to date (its inputs and outputs are as its last build left them)\n`);
  process.exit(0);
}

const run = spawnSync(step.command, { cwd: ROOT, stdio: 'inherit', shell: true });
if (run.status !== 0) process.exit(run.status ?? 1);
mkdirSync(RECORDS, { recursive: true });
// Written whole or not at all (a rename), so an interrupted write never reads as a record.
const temporary = `${recordPath}.${process.pid}`;
writeFileSync(temporary, JSON.stringify({ inputs, outputs: outputsNow() }));
renameSync(temporary, recordPath);
