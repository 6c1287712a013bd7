import type { Disposable } from '@hangar/shared';
import { closeSync, fstatSync, openSync, readSync, truncateSync, writeFileSync, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { watchFile } from '../file-watch.js';

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
      /** 'empty': start from an empty file; 'end': keep it, and read only what comes from now. */
      start: 'empty' | 'end';
      /** What the lines are, for log messages. */
      what: string;
      logger: Logger | undefined;
    },
  ) {
    writeFileSync(file, '', { flag: options.start === 'empty' ? 'w' : 'a', mode: 0o600 });
    if (options.start === 'end') this.offset = sizeOf(file);
    this.watcher = watchFile(
      file,
      () => this.read(),
      (error) => options.logger?.warn({ err: error }, `cannot watch for ${options.what}`),
    );
  }

  dispose(): void {
    this.watcher?.close();
  }

  /** Reads what was appended since the last look (also the fallback when the watch is unavailable). */
  read(): void {
    let text: string;
    try {
      const fd = openSync(this.file, 'r');
      try {
        const size = fstatSync(fd).size;
        if (size < this.offset) this.offset = 0; // emptied under us
        const buffer = Buffer.alloc(size - this.offset);
        readSync(fd, buffer, 0, buffer.length, this.offset);
        this.offset = size;
        text = this.partial + buffer.toString('utf8');
      } finally {
        closeSync(fd);
      }
      if (this.offset >= this.options.truncateAt && text.endsWith('\n')) {
        truncateSync(this.file, 0);
        this.offset = 0;
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

function sizeOf(file: string): number {
  const fd = openSync(file, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
