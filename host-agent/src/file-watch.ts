import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';

/**
 * Calls `onChange` when the file at `path` changes (inotify, kqueue). Undefined when the system
 * will not watch it (out of inotify watches, say); errors of a watch that stopped later go to
 * `onError` too. Either way the caller falls back to looking for itself.
 */
export function watchFile(
  path: string,
  onChange: () => void,
  onError: (error: unknown) => void,
): FSWatcher | undefined {
  try {
    const watcher = watch(path, { persistent: false }, onChange);
    watcher.on('error', onError);
    return watcher;
  } catch (error) {
    onError(error);
    return undefined;
  }
}

/**
 * Opens a file the agent watches and something else writes (another process, a tmux hook): to
 * append to it or empty it (either made, 0600, if missing), or to read it (and empty it by the
 * descriptor). Never through a symlink planted there (O_NOFOLLOW: ELOOP) nor into a FIFO or
 * device (O_NONBLOCK, then refused unless a regular file), so what is meant for it (a write, an
 * emptying) lands nowhere else: not on a file outside the data dir the link points to. Throws
 * where it cannot be opened so.
 */
export function openWatchedFile(file: string, how: 'append' | 'truncate' | 'read'): number {
  const { O_WRONLY, O_RDWR, O_CREAT, O_APPEND, O_TRUNC, O_NOFOLLOW, O_NONBLOCK } = constants;
  const access = how === 'read' ? O_RDWR : O_WRONLY | O_CREAT | (how === 'truncate' ? O_TRUNC : O_APPEND);
  const fd = openSync(file, access | O_NOFOLLOW | O_NONBLOCK, 0o600);
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`${file} is not a regular file`);
  }
  return fd;
}

/**
 * Makes `file` anew, holding `content` (0600): for hooks outside the agent to write to (tmux's
 * `touch`, `echo >>`, which follow symlinks), or for them to read (tmux's config, Claude's hook
 * settings). Written under a name of its own beside it (O_EXCL) and renamed over whatever was
 * there, which is replaced, not followed nor written: a symlink, a FIFO, a hard link to a file
 * elsewhere (O_NOFOLLOW does not tell one: emptying it empties that file). In a folder only this
 * user can write (0700), nothing else can put one there afterwards. Throws where it cannot (a
 * directory at that path).
 */
export function makeFileAnew(file: string, content = ''): void {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  const made = `${file}.${randomBytes(6).toString('hex')}`;
  const fd = openSync(made, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      writeFileSync(fd, content);
    } finally {
      closeSync(fd);
    }
    renameSync(made, file);
  } catch (error) {
    rmSync(made, { force: true });
    throw error;
  }
}
