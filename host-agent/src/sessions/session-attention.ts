import { Emitter, SessionName, type Disposable } from '@hangar/shared';
import { closeSync, fstatSync, openSync, readSync, truncateSync, writeFileSync, type FSWatcher } from 'node:fs';
import { watchFile } from '../file-watch.js';
import type { Logger } from 'pino';
import { PLAIN_PATH } from './session-changes.js';
import { SESSION_PREFIX } from './tmux.js';

/** The file is emptied once it holds this much (a bell per line, names are short). */
const TRUNCATE_AT = 64 * 1024;

/**
 * A server config line: on a bell in any window, tmux appends that session's name (shell-quoted
 * by tmux's `q:` modifier, so no name can inject a command) to `file`. None for a path we would
 * have to quote.
 */
export function attentionHook(file: string): string[] {
  if (!PLAIN_PATH.test(file)) return [];
  return [`set-hook -g alert-bell[99] 'run-shell -b "echo #{q:session_name} >> \\"${file}\\""'`];
}

/**
 * Sessions that rang the terminal bell: what Claude Code and other agents do when they wait for
 * an answer (with its terminal_bell notification channel), and what many builds do when done.
 * tmux sees the bell whether or not anyone is attached, so the user can be told while away.
 */
export class SessionAttention implements Disposable {
  private readonly emitter = new Emitter<string>();
  /** A session of ours (its name without the prefix) rang its bell. */
  readonly onBell = this.emitter.event;
  private readonly watcher: FSWatcher | undefined;
  private offset = 0;
  private partial = '';

  constructor(
    private readonly file: string,
    private readonly logger: Logger | undefined,
  ) {
    writeFileSync(file, '', { mode: 0o600 });
    this.watcher = watchFile(
      file,
      () => this.read(),
      (error) => this.logger?.warn({ err: error }, 'cannot watch for session bells'),
    );
  }

  dispose(): void {
    this.watcher?.close();
    this.emitter.dispose();
  }

  private read(): void {
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
      if (this.offset >= TRUNCATE_AT) {
        truncateSync(this.file, 0);
        this.offset = 0;
      }
    } catch (error) {
      this.logger?.warn({ err: error }, 'could not read session bells');
      return;
    }
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of new Set(lines)) {
      if (!line.startsWith(SESSION_PREFIX)) continue; // a session someone made by hand on our socket
      const name = line.slice(SESSION_PREFIX.length);
      if (SessionName.safeParse(name).success) this.emitter.fire(name);
    }
  }
}
