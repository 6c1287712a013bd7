import { join } from 'node:path';
import { cacheDir, runBundle } from './code-cache.js';

/**
 * The bundle's main.cjs (build/cli-bundle bundles this file into it, with these two tables): runs
 * the bundle file of the command the arguments name, as command-index.ts programFor() reads them
 * (the first word that is not an option, or the one after `help`), from its V8 code cache
 * (code-cache.ts). Not part of the tsc build's way: electron/bin/hangar.js runs dist/main.js then.
 */
declare const HANGAR_BUNDLE_FILES: Record<string, string>;
/** Each bundle file's name (no .cjs), and the hash of its contents when it was built. */
declare const HANGAR_BUNDLE_HASHES: Record<string, string>;

const words = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const name = words[0] === 'help' ? words[1] : words[0];
const bundle = name !== undefined && Object.hasOwn(HANGAR_BUNDLE_FILES, name) ? HANGAR_BUNDLE_FILES[name]! : 'overview';
const debug = process.env['HANGAR_DEBUG'] !== undefined && process.env['HANGAR_DEBUG'] !== '';
// __dirname: this runs only as the CommonJS main.cjs, beside the bundle files.
runBundle(join(__dirname, `${bundle}.cjs`), {
  hash: HANGAR_BUNDLE_HASHES[bundle]!,
  dir: process.env['HANGAR_CODE_CACHE'] === 'off' ? undefined : cacheDir(),
  importer: (specifier) => import(specifier),
  debug,
});
