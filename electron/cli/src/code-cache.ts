import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/**
 * V8's code cache for the bundle of a command (issue 18): the bytecode V8 made for it the last
 * time it ran, so that the next run neither parses its ~100 KB nor compiles the functions it
 * calls. Kept per user in <HANGAR_HOME>/cache/, written when a command exits after running
 * without one, and used only when it is certainly this user's and of this very bundle file:
 *
 * - The cache is code: V8 checks only its own version, its flags and the source's length, not
 *   the bytes it was made from. So its name carries the build's hash of the bundle (made by
 *   build/cli-bundle), and its header the size and mtime of the file it was made from: a bundle
 *   rebuilt or edited since does not match, and is compiled from its source.
 * - Like the door's socket, it is trusted only in a directory no other user can write to, owned
 *   by this user, and not writable by others itself; it is opened without following a link.
 * - Anything else (absent, unreadable, another user's, corrupt, rejected by V8) is ignored: the
 *   bundle is compiled from source as Node would, and a fresh cache is written at exit.
 */

/** What the cache file says about the bundle file it was made from. */
interface Header {
  size: number;
  mtimeMs: number;
  /**
   * The ways through the bundle (Way) of the runs that made it. V8 keeps in a cache only the
   * functions a run compiled: one made by `hangar session new` (commander's way) holds little of
   * what `hangar session ls` runs from the command table, which would then compile it afresh on
   * every run. So a run that goes a way the cache has not seen writes it again, with both.
   */
  ways?: string[];
}

/** How a bundle's code was run: a plain call from the command table, or commander's reading. */
export type Way = 'table' | 'commander';

/** The state dir the door and the core use ($HANGAR_HOME, default ~/.hangar: core/state/paths.ts). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const home = env['HANGAR_HOME'] || (env['HOME'] ?? env['USERPROFILE']);
  if (!home) return undefined;
  return join(env['HANGAR_HOME'] ? home : join(home, '.hangar'), 'cache');
}

/** Why `path` (a directory or the cache file) is not to be trusted, or undefined if it is. */
export function untrusted(stats: Stats, uid: number | undefined, kind: 'dir' | 'file'): string | undefined {
  if (kind === 'dir' ? !stats.isDirectory() : !stats.isFile()) return `not a ${kind === 'dir' ? 'directory' : 'file'}`;
  if (uid === undefined) return undefined; // Windows: the user's profile holds it
  if (stats.uid !== uid) return `owned by uid ${stats.uid}`;
  if ((stats.mode & 0o022) !== 0) return 'writable by others';
  return undefined;
}

export interface RunBundleOptions {
  /** The build's hash of the bundle file's contents (build/cli-bundle). */
  hash: string;
  /** Where caches are kept; undefined: none is read or written. */
  dir: string | undefined;
  /**
   * The bundle's import() of a module outside it (build/cli-bundle rewrites each to a call of
   * `__hangarImport`): a script that vm compiled has no import() of its own, and Node's way to
   * give it one (vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER) is experimental, warns, and is lost
   * when the script comes from a code cache.
   */
  importer: (specifier: string) => Promise<unknown>;
  /** HANGAR_DEBUG: says on stderr whether the cache was used. */
  debug?: boolean;
  /**
   * The app core's bundle file (core.cjs), run from its own code cache: each `require` of it in
   * the bundle becomes a call of this (build/cli-bundle), made only by a command that needs a core.
   */
  core?: () => unknown;
}

/**
 * What build/cli-bundle puts around each bundle file's code: as Module.wrap() does, with the
 * bundle's importer as a sixth parameter and, seventh, the function main.ts tells its Way to.
 * Done at build time, not here: V8 would compile a copy of the file's text joined to it, and that
 * copy alone can cost a listing a garbage collection.
 */
export const WRAPPER = [
  '(function (exports, require, module, __filename, __dirname, __hangarImport, __hangarWay, __hangarCore) {',
  '\n})',
] as const;

/**
 * Runs the bundle at `file` (CommonJS code inside WRAPPER) as require() would run a CommonJS
 * file (its own module, require, __filename; in require.cache), compiled from its code cache when
 * there is a good one. Returns its exports.
 */
export function runBundle(file: string, options: RunBundleOptions): unknown {
  const fd = openSync(file, 'r');
  let source: string;
  let sourceStats: Stats;
  try {
    sourceStats = fstatSync(fd);
    source = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const header: Header = { size: sourceStats.size, mtimeMs: sourceStats.mtimeMs };
  const cachePath = options.dir === undefined ? undefined : join(options.dir, cacheName(file, options.hash));
  const cached = cachePath === undefined ? { why: 'off' } : readCache(cachePath, header);
  if (!source.startsWith(WRAPPER[0])) throw new Error(`${file} is not a bundle of build/cli-bundle`);
  const script = new Script(source, {
    filename: file,
    ...(cached.data ? { cachedData: cached.data } : {}),
  });
  const used = cached.data !== undefined && !script.cachedDataRejected;
  const seen = used ? (cached.ways ?? []) : [];
  let way: Way | undefined;
  if (options.debug)
    process.stderr.write(
      `hangar: code cache ${used ? 'used' : cached.data ? 'rejected by V8' : (cached.why ?? 'absent')}: ${cachePath ?? 'HANGAR_CODE_CACHE=off'}\n`,
    );
  if (cachePath !== undefined)
    process.once('exit', () => {
      const added = way !== undefined && !seen.includes(way) ? [...seen, way] : undefined;
      if (used && !added) return;
      writeCache(cachePath, { ...header, ways: added ?? seen }, () => script.createCachedData());
    });

  const module = new Module(file);
  module.filename = file;
  module.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(file));
  // As require() would: it is in require.cache, and a require() of it again is this one.
  (Module as unknown as { _cache: Record<string, Module> })._cache[file] = module;
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(
    module.exports,
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
    options.importer,
    (taken: Way) => (way = taken),
    options.core,
  );
  module.loaded = true;
  return module.exports;
}

/**
 * `command-session.<where>.<hash>.x64.v8-<version>.cache`: the bundle's name has no dot. <where>
 * tells apart copies of hangar installed in different places (a checkout, the packaged app) that
 * share a state dir: each keeps its own cache, and only replaces its own older builds' (writeCache).
 */
export function cacheName(file: string, hash: string): string {
  const bundle = file.replace(/^.*[\\/]/, '').replace(/\.cjs$/, '');
  return `${bundle}.${placeOf(dirname(file))}.${hash}.${process.arch}.v8-${process.versions.v8}.cache`;
}

/** FNV-1a of the bundle's folder, 8 hex digits: a name, not a check (node:crypto costs a command more to load). */
function placeOf(dir: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < dir.length; i++) hash = Math.imul(hash ^ dir.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

/** The cache's V8 data if it is trusted and made from a file like `header`; else why not. */
export function readCache(path: string, header: Header): { data?: Buffer; ways?: string[]; why?: string } {
  const uid = process.getuid?.();
  let fd: number;
  try {
    const why =
      untrusted(lstatSync(dirname(dirname(path))), uid, 'dir') ?? untrusted(lstatSync(dirname(path)), uid, 'dir');
    if (why) return { why: `its directory is ${why}` };
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    return { why: (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : String(error) };
  }
  try {
    const why = untrusted(fstatSync(fd), uid, 'file');
    if (why) return { why: `it is ${why}` };
    const bytes = readFileSync(fd);
    const length = bytes.length >= 4 ? bytes.readUInt32LE(0) : Infinity;
    if (4 + length > bytes.length) return { why: 'corrupt' };
    const said = parseHeader(bytes.subarray(4, 4 + length).toString('utf8'));
    if (!said || said.size !== header.size || said.mtimeMs !== header.mtimeMs)
      return { why: 'made from another copy of the bundle' };
    return { data: bytes.subarray(4 + length), ways: said.ways ?? [] };
  } catch (error) {
    return { why: String(error) };
  } finally {
    closeSync(fd);
  }
}

function parseHeader(text: string): Header | undefined {
  try {
    const value = JSON.parse(text) as Partial<Header>;
    if (typeof value.size !== 'number' || typeof value.mtimeMs !== 'number') return undefined;
    const ways = Array.isArray(value.ways) ? value.ways.filter((w): w is string => typeof w === 'string') : [];
    return { size: value.size, mtimeMs: value.mtimeMs, ways };
  } catch {
    return undefined;
  }
}

/**
 * Writes the cache (a new file, owner-only, renamed into place: a reader never sees half of one)
 * and removes the caches of other builds of the same bundle in the same place. Only under a state dir that exists
 * and is this user's alone; any failure leaves things as they were: the cache is only a cache.
 */
export function writeCache(path: string, header: Header, data: () => Buffer): void {
  const dir = dirname(path);
  const uid = process.getuid?.();
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    if (untrusted(lstatSync(dirname(dir)), uid, 'dir')) return;
    mkdirSync(dir, { mode: 0o700, recursive: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  try {
    if (untrusted(lstatSync(dir), uid, 'dir')) return;
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length, 0);
    writeFileSync(temporary, Buffer.concat([length, json, data()]), { mode: 0o600, flag: 'wx' });
    renameSync(temporary, path);
    const name = path.slice(dir.length + 1);
    // `command-session.<where>.`: this copy's caches of this bundle (of older builds).
    const bundle = name.split('.').slice(0, 2).join('.') + '.';
    for (const other of readdirSync(dir))
      if (other !== name && other.startsWith(bundle) && other.endsWith('.cache')) unlinkSync(join(dir, other));
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // Never made.
    }
  }
}
