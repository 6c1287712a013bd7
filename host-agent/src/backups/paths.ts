import { HangarError } from '@hangar/shared';
import { lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, isAbsolute } from 'node:path';
import { ifMissing } from '../sessions/workdir.js';

/** `~` and `~/…` are the agent user's home (the schema already refused anything not absolute and any `..`). */
export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path;
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * A path to back up, as restic will record it: it must exist, and it may not be the agent's data
 * directory or inside it (its keys, the backup password). A directory that holds the data directory
 * is fine: the data directory is left out of every snapshot (BackupService passes --exclude).
 */
export async function checkBackupPath(path: string, dataDir: string): Promise<string> {
  const expanded = expandHome(path);
  const real = await realpath(expanded).catch(ifMissing(undefined));
  if (real === undefined) {
    throw new HangarError('E_BAD_REQUEST', `paths: "${path}" does not exist on this host; create it or name another`, {
      path,
    });
  }
  if (isInside(real, await realpath(dataDir))) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `paths: "${path}" is the agent's own data directory (its keys and the backup password): it is never backed up; name the directories you work in`,
      { path },
    );
  }
  return real;
}

/**
 * Makes (or checks) the directory a restore writes into, and answers with its real path. A
 * restore never writes over existing files: the directory must be new or empty. A symbolic link is
 * refused by name (so that where the files land is what the user wrote), and so is any place whose
 * real path, through whatever links its parents are, is the agent's data directory or inside it.
 */
export async function prepareRestoreTarget(to: string, dataDir: string): Promise<string> {
  const target = expandHome(to);
  const data = await realpath(dataDir);
  const info = await lstat(target).catch(ifMissing(undefined));
  if (info) {
    if (info.isSymbolicLink()) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `to: "${to}" is a symbolic link; name a new directory, or the directory itself`,
        { to },
      );
    }
    if (!info.isDirectory()) {
      throw new HangarError('E_BAD_REQUEST', `to: "${to}" is a file; name a new or empty directory`, { to });
    }
    if ((await readdir(target)).length > 0) {
      throw new HangarError(
        'E_EXISTS',
        `to: "${to}" is not empty, and a restore never writes over existing files; name a new or empty directory`,
        { to },
      );
    }
  } else {
    // The nearest part that exists decides where the new directories really go.
    let existing = dirname(target);
    while ((await lstat(existing).catch(ifMissing(undefined))) === undefined) existing = dirname(existing);
    if (isInside(await realpath(existing), data)) throw insideData(to);
    await mkdir(target, { recursive: true, mode: 0o700 });
  }
  const real = await realpath(target);
  if (isInside(real, data)) throw insideData(to);
  return real;
}

function insideData(to: string): HangarError {
  return new HangarError('E_BAD_REQUEST', `to: "${to}" is in the agent's own data directory; restore somewhere else`, {
    to,
  });
}
