import { HangarError } from '@hangar/shared';
import { open, readdir, readlink, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import type { ReadEntry } from 'tar';

/** Entry types a workspace may hold; devices and FIFOs have no business in a build's sources. */
const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

function unsafe(entry: string, why: string): HangarError {
  return new HangarError('E_WORKSPACE_UNSAFE', `workspace entry "${entry}" ${why}; the archive was not unpacked`, {
    entry,
  });
}

/** True when `path` (relative, forward slashes) stays inside the root once `..` is resolved. */
function staysInside(path: string): boolean {
  const normal = posix.normalize(path);
  return normal !== '..' && !normal.startsWith('../') && !posix.isAbsolute(normal);
}

function checkEntry(entry: ReadEntry): HangarError | undefined {
  const path = entry.path;
  if (!ALLOWED_TYPES.has(entry.type)) return unsafe(path, `is a ${entry.type}, which a workspace may not contain`);
  if (posix.isAbsolute(path) || /^[a-zA-Z]:/.test(path)) return unsafe(path, 'is an absolute path');
  if (path.split(/[\\/]/).includes('..')) return unsafe(path, 'contains ".."');
  if (entry.type === 'SymbolicLink') {
    const target = entry.linkpath ?? '';
    if (posix.isAbsolute(target)) return unsafe(path, `is a symlink to the absolute path ${target}`);
    if (!staysInside(posix.join(posix.dirname(path), target))) {
      return unsafe(path, `is a symlink to ${target}, outside the workspace`);
    }
  }
  if (entry.type === 'Link') {
    const target = entry.linkpath ?? '';
    if (posix.isAbsolute(target) || !staysInside(target)) {
      return unsafe(path, `is a hard link to ${target}, outside the workspace`);
    }
  }
  return undefined;
}

/**
 * Unpacks a workspace tarball into an empty workdir. Every entry is checked before anything is
 * written (a first pass that only reads), so a refused archive leaves nothing behind; node-tar
 * then also refuses to write through symlinks. Afterwards each symlink is resolved on disk: a
 * chain of links that are each inside can still point out together (`a -> .`, `b -> a/..`).
 */
export async function unpackWorkspace(tarball: string, workdir: string): Promise<void> {
  // An empty folder is a workspace too: the job starts in an empty workdir.
  if (await isEmptyArchive(tarball)) return;
  // Loaded on first use: a long-running agent need not keep the tar library resident.
  const { list, extract } = await import('tar');
  let refused: HangarError | undefined;
  await list({
    file: tarball,
    strict: true,
    onReadEntry: (entry) => {
      refused ??= checkEntry(entry);
      entry.resume();
    },
  });
  if (refused) throw refused;
  await extract({
    file: tarball,
    cwd: workdir,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    // Hard links are checked above; keep node-tar's own refusal of absolute and `..` paths too.
    filter: (path, entry) => checkEntry(entry as ReadEntry) === undefined,
  });
  await checkLinksOnDisk(workdir);
}

/**
 * Largest archive of nothing accepted: GNU tar pads `tar cf - -T /dev/null` to one 10 KiB record,
 * node-tar (our packer) writes the 1 KiB end marker alone.
 */
const MAX_EMPTY_ARCHIVE = 10 * 1024;

/**
 * An archive that is only its end marker (zero blocks) has no entries. node-tar's strict reader
 * calls that an unrecognized format, so it is recognised here; zeros followed by anything else
 * are left to the reader, which refuses them.
 */
async function isEmptyArchive(tarball: string): Promise<boolean> {
  const file = await open(tarball, 'r');
  try {
    const { size } = await file.stat();
    if (size === 0 || size % 512 !== 0 || size > MAX_EMPTY_ARCHIVE) return false;
    const bytes = Buffer.alloc(size);
    await file.read(bytes, 0, size, 0);
    return bytes.every((byte) => byte === 0);
  } finally {
    await file.close();
  }
}

async function checkLinksOnDisk(workdir: string): Promise<void> {
  const root = await realpath(workdir);
  const visit = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        await visit(full);
      } else if (entry.isSymbolicLink()) {
        const target = await resolveLink(full);
        if (target !== undefined && !isInside(root, target)) {
          throw unsafe(relative(workdir, full).split(sep).join('/'), `resolves to ${target}, outside the workspace`);
        }
      }
    }
  };
  await visit(workdir);
}

/** Where a symlink leads on disk; for a dangling one, where its target text points. */
async function resolveLink(link: string): Promise<string | undefined> {
  try {
    return await realpath(link);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const target = await readlink(link);
    return isAbsolute(target) ? target : join(await realpath(dirname(link)), target);
  }
}

export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}
