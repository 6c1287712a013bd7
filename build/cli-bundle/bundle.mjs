#!/usr/bin/env node
// Bundles the hangar command (electron/cli/dist, from tsc) into electron/cli/bundle/, which
// electron/bin/hangar.js runs (issue 18: start-up time).
//
// Why: Node spends most of a short command's time finding, reading and linking ES modules — the
// CLI, @hangar/shared and zod are a few hundred files. esbuild puts them in a handful: main.js
// (commander and the command index: all that --help and --version load) and one chunk per command
// plus the shared code they import, loaded when that command runs (splitting keeps the lazy
// imports lazy). The app core (@hangar/desktop/core: SQLite, the agent supervisor, files it finds
// beside itself) stays outside, loaded from its tsc output when a command needs a core of its own;
// the light door module (@hangar/desktop/core/door) is bundled.
//
//   node build/cli-bundle/bundle.mjs        (npm run build runs it after tsc -b)
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'electron', 'cli');
const OUT = join(CLI, 'bundle');

/** The core's main entry is external; its subpath ./core/door is not (esbuild's `external` would take both). */
const coreOutside = {
  name: 'core-outside',
  setup(plugin) {
    plugin.onResolve({ filter: /^@hangar\/desktop\/core$/ }, (args) => ({ path: args.path, external: true }));
  },
};

const SHARED_DIST = join(ROOT, 'shared', 'dist');
/**
 * @hangar/shared has no import-time side effects (schemas and classes only), so a module of it
 * that a command does not use is left out (the pairing handshake and its curves, the relay
 * clients). Said here rather than in shared/package.json, which the renderer's build also reads.
 */
const sharedWithoutSideEffects = {
  name: 'shared-without-side-effects',
  setup(plugin) {
    plugin.onResolve({ filter: /^@hangar\/shared$/ }, () => ({
      path: join(SHARED_DIST, 'index.js'),
      sideEffects: false,
    }));
    plugin.onResolve({ filter: /^\./ }, (args) =>
      args.resolveDir.startsWith(SHARED_DIST)
        ? { path: resolve(args.resolveDir, args.path), sideEffects: false }
        : undefined,
    );
  },
};

/**
 * zod's `z.locales` (its error messages in 40-odd languages, over half of zod's bytes) is never
 * used here: schemas speak English, which zod imports on its own (locales/en.js). Every byte of a
 * module is compiled when a command starts.
 */
const zodWithoutLocales = {
  name: 'zod-without-locales',
  setup(plugin) {
    plugin.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join('node_modules', 'zod')}`) ? { path: 'zod-locales', namespace: 'stub' } : undefined,
    );
    plugin.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

rmSync(OUT, { recursive: true, force: true });
await build({
  entryPoints: { main: join(CLI, 'dist', 'main.js') },
  outdir: OUT,
  // Every chunk at the top of bundle/, one level under electron/cli as dist/ is: src/paths.ts relies on it.
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Whitespace and syntax only: stack traces (HANGAR_DEBUG) keep their names.
  minifyWhitespace: true,
  minifySyntax: true,
  external: ['bufferutil', 'utf-8-validate'],
  plugins: [coreOutside, sharedWithoutSideEffects, zodWithoutLocales],
  // Bundled CommonJS dependencies (commander) call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __hangarRequire } from 'node:module';\nconst require = __hangarRequire(import.meta.url);",
  },
  legalComments: 'linked',
  logLevel: 'warning',
});
