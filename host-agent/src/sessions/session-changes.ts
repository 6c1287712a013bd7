import { Emitter, type Disposable, type SessionInfo } from '@hangar/shared';
import type { FSWatcher } from 'node:fs';
import { makeFileAnew, watchFile } from '../file-watch.js';
import type { Logger } from 'pino';

/** tmux events after which the session list may look different. */
const HOOKS = ['session-created', 'session-closed', 'client-attached', 'client-detached', 'pane-exited'];
/** Hook runs that come together (a session closing detaches its clients) make one listing. */
const SETTLE_MS = 50;
/**
 * A session whose command ended says so before tmux has closed it: when the list looks the same,
 * look once more this much later. (The last session's close has no hook: its server exits.)
 */
const RECHECK_MS = 500;

/** Paths we put in the tmux config as they are (no quoting games with its parser). */
export const PLAIN_PATH = /^[A-Za-z0-9_./ +,@=-]+$/;

/**
 * Server config lines: tmux touches `file` whenever the session list may have changed. Hook index
 * 99 leaves the lower ones to the user. None for a path with characters we would have to quote
 * (clients then only see changes when they list sessions themselves).
 */
export function changeHooks(file: string): string[] {
  if (!PLAIN_PATH.test(file)) return [];
  return HOOKS.map((hook) => `set-hook -g ${hook}[99] 'run-shell -b "touch \\"${file}\\""'`);
}

/**
 * Tells when the session list changed, pushed by tmux itself (through the hooks above), so
 * clients hear of a session that ended on its own without polling. Fires with the new list, and
 * only when it differs from the last one.
 */
export class SessionChanges implements Disposable {
  private readonly emitter = new Emitter<SessionInfo[]>();
  readonly onChanged = this.emitter.event;
  private readonly watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private last = '';

  constructor(
    readonly file: string,
    private readonly list: () => Promise<SessionInfo[]>,
    private readonly logger: Logger | undefined,
  ) {
    // Without a watch clients still list sessions themselves, only later.
    const unwatched = (error: unknown) => this.logger?.warn({ err: error, file }, 'cannot watch for session changes');
    try {
      // Made anew, so that tmux's `touch` (which follows symlinks) touches a file of the agent's:
      // not through a symlink or hard link planted there (emptying it emptied the file it points to).
      makeFileAnew(file);
      this.watcher = watchFile(file, () => this.poke(), unwatched);
    } catch (error) {
      unwatched(error);
    }
  }

  /** Something changed, or may have: look again soon. */
  poke(recheck = true): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.list().then(
        (sessions) => {
          const now = JSON.stringify(sessions);
          if (now === this.last) {
            if (recheck) this.recheck = setTimeout(() => this.poke(false), RECHECK_MS);
            return;
          }
          this.last = now;
          this.emitter.fire(sessions);
        },
        (error: unknown) => this.logger?.warn({ err: error }, 'could not list sessions after a change'),
      );
    }, SETTLE_MS);
  }

  dispose(): void {
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.recheck) clearTimeout(this.recheck);
    this.emitter.dispose();
  }
}
