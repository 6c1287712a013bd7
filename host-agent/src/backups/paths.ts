import { HangarError } from '@hangar/shared';
import { chmod, lstat, mkdir, mkdtemp, readdir, realpath, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, isAbsolute } from 'node:path';
import { pollUntil, procPids, procStat, readQuietly, signalQuietly } from '../jobs/executors/job-processes.js';
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

/** Where a restore goes: restic writes into `staging`, which the agent made; `target` is its name at the end. */
export interface RestoreTarget {
  /** The real path the user's directory ends up at (its parent resolved). */
  target: string;
  /** A new 0700 directory beside it, made by the agent: nobody else can put anything in it meanwhile. */
  staging: string;
  /** The mode of the empty directory the user named, which the restored one keeps (none: a new one, 0700). */
  mode: number | undefined;
}

/** `.<name>.restoring-XXXXXX`: what mkdtemp makes beside a restore's target (six letters or digits). */
export const STAGING_NAME = /^\.(.+)\.restoring-[A-Za-z0-9]{6}$/;

/**
 * Checks the directory a restore writes into and makes the staging directory restic writes to. A
 * restore never writes over existing files: the target must be new, or an empty directory of the
 * agent's own user (another user's, say one made in /tmp beforehand, is theirs to read and to fill
 * with symbolic links while restic writes). A symbolic link is refused by name (so that where the
 * files land is what the user wrote), and so is any place whose real path, through whatever links
 * its parents are, is the agent's data directory or inside it. restic then writes only into a new
 * directory the agent made (mkdtemp, 0700, beside the target), which is renamed to the target at
 * the end (finishRestore): what is checked here cannot be swapped for something else meanwhile. The
 * directory it goes in, and those above it, must be writable only by their owner or sticky
 * (checkOnlyOwnerWrites): else another user could swap the staging directory itself.
 */
export async function prepareRestoreTarget(to: string, dataDir: string): Promise<RestoreTarget> {
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
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `to: "${to}" belongs to another user (uid ${info.uid}), who could read what is restored or change where it goes; name a new directory`,
        { to },
      );
    }
    if ((await readdir(target)).length > 0) {
      throw new HangarError(
        'E_EXISTS',
        `to: "${to}" is not empty, and a restore never writes over existing files; name a new or empty directory`,
        { to },
      );
    }
    await checkOnlyOwnerWrites(await realpath(dirname(target)), to);
  } else {
    // The nearest part that exists decides where the new directories really go.
    let existing = dirname(target);
    while ((await lstat(existing).catch(ifMissing(undefined))) === undefined) existing = dirname(existing);
    const realExisting = await realpath(existing);
    if (isInside(realExisting, data)) throw insideData(to);
    // The directories made below it are the agent's own, 0700: only it can write them.
    await checkOnlyOwnerWrites(realExisting, to);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  }
  const real = join(await realpath(dirname(target)), basename(target));
  if (isInside(real, data)) throw insideData(to);
  const staging = await mkdtemp(join(dirname(real), `.${basename(real)}.restoring-`));
  return { target: real, staging, mode: info ? info.mode & 0o7777 : undefined };
}

/**
 * Puts what restic wrote into `staging` at the target: a rename, which replaces an empty directory
 * and nothing else (a file, a link or a directory that is no longer empty stays as it is, and the
 * restored files stay in `staging`, which the error names).
 */
export async function finishRestore({ target, staging, mode }: RestoreTarget, to: string): Promise<void> {
  // The directory the user named keeps its mode (the staging one is 0700): given to the staging
  // directory, the agent's own, before it takes the name.
  if (mode !== undefined) await chmod(staging, mode);
  try {
    await rename(staging, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'EISDIR') throw error;
    throw new HangarError(
      'E_EXISTS',
      `to: "${to}" was changed while restoring (it is no longer a new or empty directory), and a restore never writes over existing files: the restored files are in ${staging}`,
      { to },
    );
  }
}

/**
 * Refuses a restore whose staging directory and target would sit under a directory another user can
 * write to (group- or other-writable) without the sticky bit, as OpenSSH's StrictModes does for its
 * files: that user could rename the staging directory away and put a symbolic link in its place
 * between fs.rm's lstat and its readdir (a failed restore's cleanup would then remove what the link
 * points to), or put something at the target's name just before the final rename. `dir` is a real
 * path (no links); it and every directory above it are checked, since whoever can rename one of
 * them can swap everything below it. A sticky directory (/tmp) lets nobody rename what is not theirs.
 */
async function checkOnlyOwnerWrites(dir: string, to: string): Promise<void> {
  for (let at = dir; ; at = dirname(at)) {
    const mode = (await lstat(at)).mode;
    if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `to: "${to}" is under ${at}, which other users can write to (mode ${(mode & 0o7777).toString(8).padStart(4, '0')}, no sticky bit): they could swap the directory the restore writes for a symbolic link while it runs; restore under a directory only you can write, or a sticky one such as /tmp (or chmod go-w ${at})`,
        { to },
      );
    }
    if (at === dirname(at)) return;
  }
}

function insideData(to: string): HangarError {
  return new HangarError('E_BAD_REQUEST', `to: "${to}" is in the agent's own data directory; restore somewhere else`, {
    to,
  });
}

/**
 * Removes a staging directory a restore left when the agent was killed during it (recorded in
 * agent.db when the restore began): only that exact directory, only if it still is what the agent
 * made (named `.<target>.restoring-XXXXXX` beside its target, a directory and not a symbolic link,
 * of the agent's user, its parent the real one it was made in). fs.rm removes links inside it, never
 * what they point to. Answers whether it removed it.
 */
export async function removeLeftStaging(staging: string, target: string | null): Promise<boolean> {
  const match = STAGING_NAME.exec(basename(staging));
  if (!match || target === null || match[1] !== basename(target) || dirname(staging) !== dirname(target)) return false;
  const info = await lstat(staging).catch(ifMissing(undefined));
  if (!info || !info.isDirectory()) return false;
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) return false;
  if ((await realpath(dirname(staging)).catch(ifMissing(undefined))) !== dirname(staging)) return false;
  await rm(staging, { recursive: true, force: true });
  return true;
}

/**
 * Stops the restic a killed agent left writing into `staging` (a child of the agent, it outlives a
 * SIGKILL of it): else it goes on writing, makes the staging directory again after it was removed
 * (restic makes the directories of what it restores), and nothing records it any more. Found in
 * /proc by its arguments (`--target <staging>`, a name with six random letters) and the agent's
 * uid, never the agent itself; SIGINT (restic ends cleanly), SIGKILL after `stopMs`. Answers how
 * many it stopped. Linux only (no /proc: none found).
 */
export async function stopLeftRestic(staging: string, stopMs: number): Promise<number> {
  if (!STAGING_NAME.test(basename(staging))) return 0;
  const uid = process.getuid?.();
  const writers = (): number[] => {
    let pids: number[];
    try {
      pids = procPids();
    } catch {
      return [];
    }
    return pids.filter((pid) => {
      if (pid === process.pid) return false;
      const stat = procStat(pid);
      if (stat === undefined || stat.zombie) return false;
      const status = readQuietly(`/proc/${pid}/status`);
      const owner = status === undefined ? undefined : /^Uid:\s+(\d+)/m.exec(status)?.[1];
      if (uid !== undefined && owner !== String(uid)) return false;
      const args = (readQuietly(`/proc/${pid}/cmdline`) ?? '').split('\0');
      return args.some((arg, i) => arg === '--target' && args[i + 1] === staging);
    });
  };
  const found = writers();
  for (const pid of found) signalQuietly(pid, 'SIGINT');
  if (found.length === 0 || (await pollUntil(() => writers().length === 0, stopMs))) return found.length;
  await pollUntil(() => {
    const left = writers();
    for (const pid of left) signalQuietly(pid, 'SIGKILL');
    return left.length === 0;
  }, stopMs);
  return found.length;
}
