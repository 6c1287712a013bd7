import type { Disposable } from '@hangar/shared';
import { closeSync, fstatSync, ftruncateSync, readSync, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { makeFileAnew, openWatchedFile, watchFile } from '../file-watch.js';

/**
 * A file that hooks outside the agent append lines to (tmux's bell hook, Claude Code's hooks):
 * each batch of whole lines appended since the last look goes to `onLines`, as the file changes.
 * It is emptied once it holds `truncateAt` bytes and ends on a whole line, so it stays small.
 */
export class AppendedLines implements Disposable {
  private readonly watcher: FSWatcher | undefined;
  private offset = 0;
  private partial = '';

  constructor(
    readonly file: string,
    private readonly options: {
      onLines: (lines: string[]) => void;
      truncateAt: number;
      /** What the lines are, for log messages. */
      what: string;
      logger: Logger | undefined;
    },
  ) {
    const unwatched = (error: unknown) =>
      options.logger?.warn({ err: error, file }, `cannot watch for ${options.what}`);
    try {
      // Made anew, so that the hooks write into a file of the agent's: not through a symlink or
      // hard link planted there. What an earlier agent left in it is old news.
      makeFileAnew(file);
      this.watcher = watchFile(file, () => this.read(), unwatched);
    } catch (error) {
      unwatched(error);
    }
  }

  dispose(): void {
    this.watcher?.close();
  }

  /** Reads what was appended since the last look (also the fallback when the watch is unavailable). */
  read(): void {
    let text: string;
    try {
      // Emptied by this descriptor: a symlink put in its place since is not followed either.
      const fd = openWatchedFile(this.file, 'read');
      try {
        const size = fstatSync(fd).size;
        if (size < this.offset) this.offset = 0; // emptied under us
        const buffer = Buffer.alloc(size - this.offset);
        readSync(fd, buffer, 0, buffer.length, this.offset);
        this.offset = size;
        text = this.partial + buffer.toString('utf8');
        if (this.offset >= this.options.truncateAt && text.endsWith('\n')) {
          ftruncateSync(fd, 0);
          this.offset = 0;
        }
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      this.options.logger?.warn({ err: error }, `could not read ${this.options.what}`);
      return;
    }
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (lines.length > 0) this.options.onLines(lines);
  }
}
