#!/usr/bin/env node
// Bundles the hangar command (electron/cli/dist, from tsc) into electron/cli/bundle/, which
// electron/bin/hangar.js requires (issue 18: start-up time).
//
// Why: Node spends most of a short command's time finding, reading and linking ES modules — the
// CLI, @hangar/shared and zod are a few hundred files, and each ES module file costs a read
// through Node's thread pool, a compile and a link whatever its size. So each command gets one
// file holding all it runs: command-<file>.cjs per file of electron/cli/src/commands (the command
// index and main.ts with it), overview.cjs for --help, --version and no command, and main.cjs, which
// picks one by the command's name. Twenty small chunks (the split build this replaced) took a
// listing through a running core ~30 ms more CPU than the one file. The app core
// (@hangar/desktop/core: SQLite, the agent supervisor, files it finds beside itself) is core.cjs,
// a file of its own, required only by a command that runs a core (one of its own with no app
// running, `hangar ui`, `hangar up`): from its tsc output's few hundred ES modules (with shared's,
// zod's, tar's, pino's) Node spent ~400 ms loading. Its native modules stay outside, and each
// place it finds a file beside itself finds it from its tsc output (metaOfOrigin). The light door
// module (@hangar/desktop/core/door) is bundled into each command.
//
// Inputs: electron/cli/dist, electron/core/dist (door/ for every command, all of it for core.cjs),
// shared/dist, lane/dist, electron/package.json, and the packages in node_modules they import.
//
//   node build/cli-bundle/bundle.mjs        (npm run build runs it after tsc -b)
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'electron', 'cli');
const OUT = join(CLI, 'bundle');

/**
 * The app core (@hangar/desktop/core) is a file of its own, core.cjs (below), beside the command
 * files: required only by a command that runs a core of its own (or `hangar ui`/`up`), not
 * bundled into each. Its subpath ./core/door is not it (esbuild's `external` would take both).
 */
const coreOutside = {
  name: 'core-outside',
  setup(plugin) {
    plugin.onResolve({ filter: /^@hangar\/desktop\/core$/ }, () => ({ path: './core.cjs', external: true }));
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
    plugin.onResolve({ filter: /^\// }, (args) =>
      args.path.startsWith(SHARED_DIST) ? { path: args.path, sideEffects: false } : undefined,
    );
  },
};

/**
 * Each `import { … } from '@hangar/shared'` of the CLI and of the core's door module, rewritten to
 * import every name from the module of shared that defines it. Why: esbuild splits code by which
 * files each lazily loaded command reaches, not by which exports it uses, so through shared's index
 * every command would reach every module of shared, zod and all; this way a command that uses no
 * schema (session ls through a running core's door) loads none. A name not found stays with the index.
 */
const sharedByModule = {
  name: 'shared-by-module',
  setup(plugin) {
    const definedIn = sharedDefinitions();
    const rewrite = (source) =>
      source.replace(/import\s*\{([^}]*)\}\s*from\s*'@hangar\/shared';/g, (statement, list) => {
        const names = list
          .split(',')
          .map((item) => item.trim())
          .filter(Boolean);
        const byFile = new Map();
        for (const item of names) {
          const file = definedIn.get(item.split(/\s+as\s+/)[0]);
          if (file === undefined) return statement;
          byFile.set(file, [...(byFile.get(file) ?? []), item]);
        }
        return [...byFile]
          .map(([file, items]) => `import { ${items.join(', ')} } from ${JSON.stringify(file)};`)
          .join('\n');
      });
    const ours = new RegExp(
      `^${[join(CLI, 'dist'), join(ROOT, 'electron', 'core', 'dist', 'door')].map((dir) => dir.replace(/[/\\.]/g, '\\$&')).join('|')}`,
    );
    plugin.onLoad({ filter: /\.js$/ }, (args) =>
      ours.test(args.path) ? { contents: rewrite(readFileSync(args.path, 'utf8')), loader: 'js' } : undefined,
    );
  },
};

/** Every name a module of shared/dist defines (export const/function/class), and the module; names defined twice are left out. */
function sharedDefinitions() {
  const definedIn = new Map();
  const twice = new Set();
  const visit = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.js')) {
        const source = readFileSync(path, 'utf8');
        for (const [, name] of source.matchAll(
          /^export (?:const|let|var|class|(?:async )?function\*?) ([A-Za-z0-9_$]+)/gm,
        )) {
          if (definedIn.has(name)) twice.add(name);
          definedIn.set(name, path);
        }
      }
    }
  };
  visit(SHARED_DIST);
  for (const name of twice) definedIn.delete(name);
  return definedIn;
}

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

/**
 * The protocol tables this bundle holds, as a running core says its own in the door greeting: a
 * core of the same tables is trusted to check calls and answers (electron/cli/src/run.ts), so a
 * command reaching it loads no schema.
 */
const { protocolFingerprint } = await import(join(ROOT, 'electron', 'core', 'dist', 'door', 'fingerprint.js'));
const protocol = protocolFingerprint(SHARED_DIST);
if (protocol === undefined) throw new Error(`cannot read the protocol modules in ${SHARED_DIST}; run tsc -b first`);

/**
 * Which file of the command's own each top-level command's registration is in
 * (`() => import('./commands/jobs.js')…` in command-index.ts): `cancel` and `retry` are in jobs.
 */
const { TOP_COMMANDS } = await import(join(CLI, 'dist', 'command-index.js'));
const fileOf = new Map(
  TOP_COMMANDS.map((command) => {
    const file = /\.\/commands\/([\w-]+)\.js/.exec(command.load.toString())?.[1];
    if (file === undefined) throw new Error(`cannot tell which file registers hangar ${command.name}`);
    return [command.name, file];
  }),
);
const files = [...new Set(fileOf.values())];

/**
 * The command table (src/command-table.ts) read from the program with every command file
 * registered: each bundle file holds the part of it for its own commands (the completion's, all
 * of it), and runs a plain call of one from it without commander. The overview holds none.
 */
const { buildProgram } = await import(join(CLI, 'dist', 'program.js'));
const { describeCommand } = await import(join(CLI, 'dist', 'describe-commands.js'));
const fullTable = describeCommand(await buildProgram());
const tableOf = (file) =>
  file === 'overview'
    ? 'undefined'
    : JSON.stringify(
        file === 'completion'
          ? fullTable
          : { ...fullTable, commands: fullTable.commands.filter((command) => fileOf.get(command.name) === file) },
      );

/**
 * The version `hangar --version` and `--help` say (src/version.ts), from electron/package.json as
 * it is when bundled: the command then neither reads nor parses it (issue 18).
 */
const { version } = JSON.parse(readFileSync(join(ROOT, 'electron', 'package.json'), 'utf8'));

/**
 * In the bundle of one command's file, every other command's file is left out: main.cjs (below)
 * runs the bundle of the command named, whose command-index never loads another's. The overview
 * (`--help`, `--version`, no command) holds none, nor the way to the core (run.js: main.ts loads it
 * only for a command that goes through the core). Loading one anyway fails with a sentence.
 */
const onlyCommand = (own) => ({
  name: 'only-command',
  setup(plugin) {
    const leftOut = (name) => ({ path: name, namespace: 'left-out' });
    plugin.onResolve({ filter: /^\.\/commands\/[\w-]+\.js$/ }, (args) => {
      const file = /([\w-]+)\.js$/.exec(args.path)[1];
      if (file === own || !args.importer.endsWith('command-index.js')) return undefined;
      return leftOut(`${file} command`);
    });
    plugin.onResolve({ filter: /^\.\/run\.js$/ }, (args) =>
      own === 'overview' && args.importer === join(CLI, 'dist', 'main.js') ? leftOut('way to the core') : undefined,
    );
    plugin.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({
      contents: `throw new Error('this bundle of hangar holds no ${args.path} (electron/cli/bundle/main.cjs picks one by name)');`,
      loader: 'js',
    }));
  },
});

/**
 * A dynamic import('@hangar/shared') (the full client for a core of another build, the key trace)
 * stays outside, loaded from shared's tsc output when it runs: inlined, all of shared and zod would
 * be in every command's file. Errors from that copy are told apart by name (exit-codes.ts), and
 * the key trace keeps its recorder on globalThis.
 */
const sharedLoadedLater = {
  name: 'shared-loaded-later',
  setup(plugin) {
    plugin.onResolve({ filter: /^@hangar\/shared$/ }, (args) =>
      args.kind === 'dynamic-import' ? { path: args.path, external: true } : undefined,
    );
  },
};

/**
 * commander requires node:child_process when it loads, for subcommands that are programs of
 * their own (`git-style`), which hangar has none of: loading it takes child_process, dgram, net's
 * socket list and their bindings into every command. Here it is required on first use instead.
 */
const childProcessOnUse = {
  name: 'child-process-on-use',
  setup(plugin) {
    plugin.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      args.importer.includes(join('node_modules', 'commander'))
        ? { path: 'child_process', namespace: 'on-use' }
        : undefined,
    );
    plugin.onLoad({ filter: /.*/, namespace: 'on-use' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_target, key) => require('node:child_process')[key] });",
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  // CommonJS: required from electron/bin/hangar.js, a command's file is read and compiled by
  // Node's CommonJS loader, synchronously; Node's ES module loader (its own modules, a thread-pool
  // read per file, the link step) is not even loaded on a listing's way. A dynamic import() of
  // something outside (the app core, shared's full client) stays one.
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  target: 'node20',
  // Whitespace and syntax only: stack traces (HANGAR_DEBUG) keep their names.
  minifyWhitespace: true,
  minifySyntax: true,
  external: ['bufferutil', 'utf-8-validate'],
  define: {
    HANGAR_BUNDLED_PROTOCOL: JSON.stringify(protocol),
    HANGAR_VERSION: JSON.stringify(version),
    'import.meta.url': '__hangarImportMetaUrl',
  },
  // import.meta.url of the code bundled (src/paths.ts): the file's own, as in an ES module.
  banner: { js: "const __hangarImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  legalComments: 'linked',
  logLevel: 'warning',
};
const plugins = [
  childProcessOnUse,
  coreOutside,
  sharedLoadedLater,
  sharedByModule,
  sharedWithoutSideEffects,
  zodWithoutLocales,
];

rmSync(OUT, { recursive: true, force: true });

/**
 * An expression for the path of `file` (a module bundled into core.cjs) when core.cjs runs: a file
 * of @hangar/desktop (the core's tsc output) from the bundle's directory, as the two ship together;
 * a file of another package (@hangar/lane) from where that package resolves then, which in the
 * packaged app is its node_modules, not the checkout's folder it was bundled from.
 */
function originOf(file) {
  let root = dirname(file);
  while (!existsSync(join(root, 'package.json'))) root = dirname(root);
  if (root === join(ROOT, 'electron'))
    return `require('node:path').join(__dirname, ${JSON.stringify(relative(OUT, file))})`;
  const { name } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return `require('node:path').join(require('node:path').dirname(require.resolve(${JSON.stringify(`${name}/package.json`)})), ${JSON.stringify(relative(root, file))})`;
}

/**
 * Where a module of the core (or of a package it bundles: @hangar/lane) finds a file beside itself
 * (import.meta.url, import.meta.resolve: the renderer's build, the agent's package, the lane
 * addon, shared's protocol modules), in core.cjs: its own tsc output's URL, found from the bundle
 * file's directory (electron/cli/bundle), so each finds what it found from its tsc output. The
 * tsc output is there wherever the bundle is (electron-builder.yml packs both).
 */
const metaOfOrigin = {
  name: 'meta-of-origin',
  setup(plugin) {
    plugin.onLoad({ filter: /\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta')) return undefined;
      const origin = originOf(args.path);
      return {
        contents: source
          .replace(/\bimport\.meta\.url\b/g, `require('node:url').pathToFileURL(${origin}).href`)
          .replace(
            /\bimport\.meta\.resolve\(/g,
            `((specifier) => require('node:url').pathToFileURL(require('node:module').createRequire(${origin}).resolve(specifier)).href)(`,
          ),
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
  },
};
await Promise.all([
  // One file per command file, and one for `--help`, `--version` and no command: all that the
  // command runs, in one file (the dynamic imports on its way inlined). Node reads, compiles and
  // links each ES module file on its own, through its thread pool: twenty small files cost a
  // listing more than the bytes in them (issue 18).
  ...[...files, 'overview'].map((file) =>
    build({
      ...common,
      entryPoints: { [file === 'overview' ? 'overview' : `command-${file}`]: join(CLI, 'dist', 'main.js') },
      // Every file at the top of bundle/, one level under electron/cli as dist/ is: src/paths.ts relies on it.
      outdir: OUT,
      define: { ...common.define, HANGAR_COMMAND_TABLE: tableOf(file) },
      plugins: [onlyCommand(file), ...plugins],
    }),
  ),
  // The app core, for the commands that run one: one CommonJS file (its ES modules, shared's and
  // zod's, tar's, pino's) instead of a few hundred ES module files, each read, compiled and linked
  // on its own. Native modules stay outside, loaded from node_modules as before.
  build({
    ...common,
    entryPoints: { core: join(ROOT, 'electron', 'core', 'dist', 'index.js') },
    outdir: OUT,
    external: [...common.external, 'better-sqlite3', 'node-datachannel', 'node-pty', '*.node'],
    define: {},
    banner: {},
    // A module loaded when first used (node-datachannel) is required then: main.cjs runs the core
    // as a script, which has no import() of its own.
    supported: { 'dynamic-import': false },
    plugins: [metaOfOrigin, sharedWithoutSideEffects, zodWithoutLocales],
  }),
]);

/**
 * main.cjs runs each bundle as a script compiled by node:vm (src/code-cache.ts), from its code
 * cache: the file is CommonJS inside a function (WRAPPER, as Node's own loader wraps it), which
 * main.cjs calls; a plain require() of it runs nothing. Such a script has no import() of its own:
 * each import() of a module outside the bundle (the app core, shared's full client, a built-in)
 * becomes a call of the importer main.cjs passes it, `__hangarImport`. Any other import() left in
 * a bundle fails the build.
 */
const { WRAPPER } = await import(join(CLI, 'dist', 'code-cache.js'));
for (const bundle of [...files.map((file) => `command-${file}`), 'overview', 'core']) {
  const path = join(OUT, `${bundle}.cjs`);
  const text = readFileSync(path, 'utf8')
    // The core's file is run by main.cjs as the command's own is, from its code cache
    // (`__hangarCore`, src/launch.ts); not import()ed, which would load Node's ES module loader for
    // it and read it twice for its names.
    .replace(/(?<![\w$.])import\("\.\/core\.cjs"\)/g, 'Promise.resolve().then(() => __hangarCore())')
    .replace(/(?<![\w$.])require\("\.\/core\.cjs"\)/g, '__hangarCore()')
    .replace(/(?<![\w$.])import\((?="(?:@hangar\/|node:))/g, '__hangarImport(');
  const left = /(?<![\w$.])import\(.{0,40}/.exec(text);
  if (left) throw new Error(`${bundle}.cjs: an import() that main.cjs cannot serve: ${left[0]}`);
  writeFileSync(path, WRAPPER[0] + text + WRAPPER[1]);
}

/**
 * main.cjs (src/launch.ts): picks the file of the command named (as command-index.ts programFor()
 * reads the arguments: the first word that is not an option, or the one after `help`) and runs it
 * from its V8 code cache (src/code-cache.ts), which is kept only for a bundle of this very hash.
 */
const hashes = Object.fromEntries(
  [...files.map((file) => `command-${file}`), 'overview', 'core'].map((bundle) => [
    bundle,
    createHash('sha256')
      .update(readFileSync(join(OUT, `${bundle}.cjs`)))
      .digest('hex')
      .slice(0, 16),
  ]),
);
await build({
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  entryPoints: [join(CLI, 'dist', 'launch.js')],
  outfile: join(OUT, 'main.cjs'),
  define: {
    'import.meta.url': '__hangarImportMetaUrl',
    HANGAR_VERSION: JSON.stringify(version),
    HANGAR_BUNDLE_FILES: JSON.stringify(
      Object.fromEntries([...fileOf].map(([name, file]) => [name, `command-${file}`])),
    ),
    HANGAR_BUNDLE_HASHES: JSON.stringify(hashes),
  },
  banner: {
    js: `// Made by build/cli-bundle/bundle.mjs from electron/cli/src/launch.ts.\n${common.banner.js}`,
  },
});
