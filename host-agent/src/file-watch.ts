import { watch, type FSWatcher } from 'node:fs';

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
