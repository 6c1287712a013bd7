import { HangarError, formatBytes, type Disposable } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create as createTar } from 'tar';

const run = promisify(execFile);

/** Default cap on a workspace tarball; the agent enforces its own limit as well. */
export const DEFAULT_MAX_WORKSPACE_BYTES = 1024 * 1024 * 1024;

/**
 * Downloaded artifacts land in ./hangar-artifacts/<job>/; packing them would make every run after
 * one that produced artifacts a new workspace (no dedup) and ship old build output back to the host.
 */
export const ARTIFACTS_DIR = 'hangar-artifacts';

/** A fixed mtime: the same content must give the same bytes, whenever and wherever it was checked out. */
const FIXED_MTIME = new Date(0);

/** A tar archive with no entries: only its end marker, two zero blocks (what node-tar ends every archive with). */
const EMPTY_TAR = new Uint8Array(1024);

export interface PackedWorkspace extends Disposable {
  /** sha256 of the tarball bytes, lowercase hex: the workspace's id on every host. */
  hash: string;
  size: number;
  /** A temporary file holding the tarball; removed by dispose(). */
  path: string;
  entries: number;
  source: 'git' | 'folder';
}

export interface PackOptions {
  maxBytes?: number;
}

/**
 * The working tree as a deterministic tarball: inside git the tracked files plus untracked files
 * that are not ignored, outside git the whole folder. Entries are sorted, mtimes fixed, owners and
 * umask-dependent bits dropped (tar's `portable`), symlinks stored as links, never followed. An
 * empty folder (or a fresh `git init`) is an empty workspace: an archive with no entries. Outside
 * git, the home directory and `/` are refused: nobody means to upload all of that.
 */
export async function packWorkspace(dir: string, options: PackOptions = {}): Promise<PackedWorkspace> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_WORKSPACE_BYTES;
  const git = await gitFiles(dir);
  if (!git) await refuseWholeHome(dir);
  const listed = git ?? (await walk(dir, ''));
  const entries = await expandAndSort(dir, listed);
  const declared = entries.reduce((sum, e) => sum + e.size, 0);
  if (declared > maxBytes) throw tooLarge(dir, declared, maxBytes);

  const tmp = await mkdtemp(join(tmpdir(), 'hangar-workspace-'));
  const path = join(tmp, 'workspace.tar');
  const dispose = () => rm(tmp, { recursive: true, force: true });
  try {
    const { hash, size } =
      entries.length === 0
        ? await writeEmptyTar(path)
        : await writeTar(
            dir,
            entries.map((e) => e.path),
            path,
            maxBytes,
          );
    return { hash, size, path, entries: entries.length, source: git ? 'git' : 'folder', dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

interface Entry {
  path: string;
  size: number;
}

/** Relative paths of files and symlinks, or undefined when `dir` is not inside a git work tree. */
async function gitFiles(dir: string): Promise<string[] | undefined> {
  try {
    const inside = await run('git', ['rev-parse', '--is-inside-work-tree'], { cwd: dir });
    if (inside.stdout.trim() !== 'true') return undefined;
  } catch (error) {
    // Not a repository, or git is not installed: both mean "pack the folder".
    if (isExecError(error)) return undefined;
    throw error;
  }
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: dir,
    maxBuffer: 256 * 1024 * 1024,
  });
  return stdout.split('\0').filter((p) => p.length > 0);
}

/** Outside git, the home directory or `/` would be packed whole: refuse, and say what to do instead. */
async function refuseWholeHome(dir: string): Promise<void> {
  const here = await realpath(dir);
  const home = await realpath(homedir()).catch(() => homedir());
  if (here !== home && here !== '/') return;
  const what = here === '/' ? 'the root directory' : 'your home directory';
  throw new HangarError(
    'E_BAD_REQUEST',
    `${here} is ${what} and not inside git: packing it would upload everything in it. ` +
      'Run from a project folder, pick one with --dir <folder>, or run with an empty workspace: --no-workspace',
    { dir: here },
  );
}

function isExecError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && ('code' in error || 'stderr' in error);
}

async function walk(root: string, rel: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(root, child)));
    else out.push(child);
  }
  return out;
}

/**
 * Drops what git lists but the tree no longer has (a deleted tracked file), expands directories
 * (a submodule is listed as one path), skips sockets and devices, and sorts by byte order so the
 * archive does not depend on readdir order or locale.
 */
async function expandAndSort(root: string, paths: string[]): Promise<Entry[]> {
  const seen = new Set<string>();
  const entries: Entry[] = [];
  const visit = async (rel: string): Promise<void> => {
    if (seen.has(rel) || rel === ARTIFACTS_DIR || rel.startsWith(`${ARTIFACTS_DIR}/`)) return;
    seen.add(rel);
    let stat;
    try {
      stat = await lstat(join(root, rel));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (stat.isDirectory()) {
      for (const child of await walk(root, rel)) await visit(child);
    } else if (stat.isFile()) {
      entries.push({ path: rel, size: stat.size });
    } else if (stat.isSymbolicLink()) {
      entries.push({ path: rel, size: 0 });
    }
  };
  for (const rel of paths) await visit(rel);
  entries.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  return entries;
}

/** A link cache that never remembers: hard links are stored as files, as on a fresh checkout. */
class NoLinkCache extends Map<string, string> {
  override get(): undefined {
    return undefined;
  }
  override set(): this {
    return this;
  }
}

async function writeTar(
  dir: string,
  paths: string[],
  out: string,
  maxBytes: number,
): Promise<{ hash: string; size: number }> {
  const hasher = createHash('sha256');
  let size = 0;
  const file = createWriteStream(out);
  const archive = createTar(
    {
      cwd: dir,
      portable: true,
      mtime: FIXED_MTIME,
      noDirRecurse: true,
      follow: false,
      strict: true,
      linkCache: new NoLinkCache() as never,
    },
    paths,
  );
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      file.destroy();
      reject(error);
    };
    archive.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        fail(tooLarge(dir, size, maxBytes));
        return;
      }
      hasher.update(chunk);
      if (!file.write(chunk)) {
        archive.pause();
        file.once('drain', () => archive.resume());
      }
    });
    archive.on('end', () => {
      if (!failed) file.end();
    });
    archive.on('error', fail);
    file.on('error', fail);
    file.on('finish', () => {
      if (!failed) resolve();
    });
  });
  return { hash: hasher.digest('hex'), size };
}

/** node-tar refuses to write an archive of nothing ("no paths specified"), so the end marker is written here. */
async function writeEmptyTar(out: string): Promise<{ hash: string; size: number }> {
  await writeFile(out, EMPTY_TAR);
  return { hash: createHash('sha256').update(EMPTY_TAR).digest('hex'), size: EMPTY_TAR.length };
}

function tooLarge(dir: string, size: number, maxBytes: number): HangarError {
  return new HangarError(
    'E_WORKSPACE_TOO_LARGE',
    `the workspace ${dir} packs to more than ${formatBytes(maxBytes)} (at least ${formatBytes(size)}); ` +
      `add build output and dependencies to .gitignore, or run from a smaller folder`,
    { size, max_bytes: maxBytes },
  );
}
