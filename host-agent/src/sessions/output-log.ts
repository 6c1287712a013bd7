import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { shellQuote, type Disposable } from '@hangar/shared';
import type { Logger } from 'pino';
import { escapeFormat, type Tmux } from './tmux.js';

export const OUTPUT_LOG = 'output.log';
/** What a full output.log becomes; the one before it is dropped. */
export const OUTPUT_LOG_PREVIOUS = 'output.log.1';

/** The pipe-pane command that appends a session's output to its log. */
export function outputLogCommand(sessionDir: string): string {
  return escapeFormat(`cat >> ${shellQuote(join(sessionDir, OUTPUT_LOG))}`);
}

export interface OutputLogRotationOptions {
  tmux: Tmux;
  sessionsDir: string;
  /** Sessions to look at: name → tmux target. */
  sessions(): Promise<{ name: string; target: string }[]>;
  maxBytes: number;
  checkMs: number;
  logger: Logger | undefined;
}

/**
 * Keeps each session's output.log (tmux pipe-pane) from filling the disk: an agent terminal runs
 * for days. Past maxBytes the file becomes output.log.1 (replacing the older one) and pipe-pane
 * is pointed at a fresh output.log; tmux closes the old pipe when it opens the new one. So a
 * session keeps at most about twice maxBytes, plus what it writes between two checks.
 */
export class OutputLogRotation implements Disposable {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: OutputLogRotationOptions) {}

  /**
   * Checks every checkMs while `on`: the session manager turns it on while sessions run, so an
   * agent without sessions does not run `tmux list-sessions` once a minute for nothing.
   */
  setChecking(on: boolean): void {
    if (on === (this.timer !== undefined)) return;
    if (on) {
      this.timer = setInterval(() => void this.check(), this.options.checkMs);
      this.timer.unref();
    } else {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** One pass over the sessions; also run by the timer. */
  async check(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const { name, target } of await this.options.sessions()) {
        const dir = join(this.options.sessionsDir, name);
        const size = await stat(join(dir, OUTPUT_LOG)).then(
          (info) => info.size,
          () => 0,
        );
        if (size <= this.options.maxBytes) continue;
        await rename(join(dir, OUTPUT_LOG), join(dir, OUTPUT_LOG_PREVIOUS));
        await this.options.tmux.run(['pipe-pane', '-t', `=${target}:`, outputLogCommand(dir)]);
        this.options.logger?.info({ session: name, bytes: size }, 'session output log rotated');
      }
    } catch (error) {
      // A session that ended between listing and rotating; the next pass sees the new state.
      this.options.logger?.warn({ err: error }, 'could not rotate a session output log');
    } finally {
      this.running = false;
    }
  }

  dispose(): void {
    this.setChecking(false);
  }
}
