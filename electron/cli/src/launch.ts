import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, runBundle } from './code-cache.js';
import { hangarVersion } from './version.js';

/**
 * The bundle's main.cjs (build/cli-bundle bundles this file into it, with these two tables): runs
 * the bundle file of the command the arguments name, as command-index.ts programFor() reads them
 * (the first word that is not an option, or the one after `help`), from its V8 code cache
 * (code-cache.ts). Not part of the tsc build's way: electron/bin/hangar.js runs dist/main.js then.
 */
declare const HANGAR_BUNDLE_FILES: Record<string, string>;
/** Each bundle file's name (no .cjs), and the hash of its contents when it was built. */
declare const HANGAR_BUNDLE_HASHES: Record<string, string>;

const args = process.argv.slice(2);
const words = args.filter((arg) => !arg.startsWith('-'));
const name = words[0] === 'help' ? words[1] : words[0];
const bundle = name !== undefined && Object.hasOwn(HANGAR_BUNDLE_FILES, name) ? HANGAR_BUNDLE_FILES[name]! : 'overview';
const debug = process.env['HANGAR_DEBUG'] !== undefined && process.env['HANGAR_DEBUG'] !== '';

// A lone --version (main.ts answers it the same way in the tsc build) runs no bundle, and is
// written straight to fd 1: process.stdout on a pipe would load node:net and the streams for it.
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) printVersion();
// __dirname: this runs only as the CommonJS main.cjs, beside the bundle files.
else run(bundle);

function run(name: string, core?: () => unknown): unknown {
  return runBundle(join(__dirname, `${name}.cjs`), {
    hash: HANGAR_BUNDLE_HASHES[name]!,
    dir: process.env['HANGAR_CODE_CACHE'] === 'off' ? undefined : cacheDir(),
    importer: (specifier) => import(specifier),
    debug,
    core: core ?? requireCore,
  });
}

/** The app core (core.cjs, from its code cache too): run once, for the commands that need a core. */
let core: unknown;
function requireCore(): unknown {
  core ??= run('core', () => {
    throw new Error('the core requires no core');
  });
  return core;
}

function printVersion(): void {
  const text = `${hangarVersion()}\n`;
  try {
    writeSync(1, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The reader left (`hangar --version | true`): nothing more to say, as in main.ts.
    if (code === 'EPIPE') return;
    // A pipe someone made non-blocking, full for now: the stream waits for it.
    if (code === 'EAGAIN') process.stdout.write(text);
    else {
      process.stderr.write(`hangar: cannot write to stdout: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}
