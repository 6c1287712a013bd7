import type { Disposable, SessionInfo, TmuxServerState } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * A host's session list is answered from what it last said for as long as its link is up: its
 * agent pushes a new list (sessions.changed) whenever tmux, an attach or an agent's status changes
 * it, and when its tmux server is gone (it looks every second; no hook tells that). For what still
 * goes untold (an older agent's killed server, a host whose hooks could not be set: a data dir path
 * with unusual characters), each answer from here also asks the host again in the background, at
 * most once per REFRESH_GAP_MS: the next listing has what it said.
 */
const REFRESH_GAP_MS = 5000;

export interface SessionList {
  sessions: SessionInfo[];
  tmux: TmuxServerState | null;
}

type Known = SessionList;

/**
 * Each linked host's session list as it last said it, kept current by its sessions.changed
 * events: `hangar session ls`, completion and the windows' lists through a running core are
 * answered from here (issue 18: ten hosts each running tmux for every listing took most of a
 * second), while the core's own changes (create, kill, attach) and a dropped link forget it.
 */
export class KnownSessions {
  private readonly known = new Map<string, Known>();
  /** Bumped on every change of a host's entry: an answer asked for before the bump is older than it. */
  private readonly generations = new Map<string, number>();
  /** When each host was last asked in the background, and whether that is still under way. */
  private readonly refreshed = new Map<string, { at: number; pending: boolean }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Follows the host's pushes and its link for as long as the connection lives. */
  follow(name: string, connection: HostConnection): Disposable[] {
    return [
      connection.on('sessions.changed', ({ sessions, tmux }) => this.set(name, { sessions, tmux })),
      connection.onStatus((status) => {
        if (status !== 'online') this.forget(name);
      }),
    ];
  }

  /** The list the host last said on a link that is still up. */
  current(name: string): SessionList | undefined {
    const known = this.known.get(name);
    return known && { sessions: known.sessions, tmux: known.tmux };
  }

  /**
   * The known list (and `ask` again in the background), else `ask`'s answer. An answer that an
   * event overtook is not kept.
   */
  async list(name: string, ask: () => Promise<SessionList>): Promise<SessionList> {
    const current = this.current(name);
    if (!current) return this.ask(name, ask);
    const refresh = this.refreshed.get(name);
    if (!refresh?.pending && this.now() - (refresh?.at ?? 0) >= REFRESH_GAP_MS) {
      const state = { at: this.now(), pending: true };
      this.refreshed.set(name, state);
      // A host that no longer answers is asked, and reported, by the next listing.
      this.ask(name, ask).then(
        () => (state.pending = false),
        () => {
          state.pending = false;
          this.forget(name);
        },
      );
    }
    return current;
  }

  private async ask(name: string, ask: () => Promise<SessionList>): Promise<SessionList> {
    const generation = this.generations.get(name) ?? 0;
    const answer = await ask();
    if ((this.generations.get(name) ?? 0) === generation) this.set(name, answer);
    return answer;
  }

  /** The host's list changed through this core (or may have): the next listing asks it. */
  forget(name: string): void {
    this.bump(name);
    this.known.delete(name);
  }

  private set(name: string, list: SessionList): void {
    this.bump(name);
    this.known.set(name, { ...list });
  }

  private bump(name: string): void {
    this.generations.set(name, (this.generations.get(name) ?? 0) + 1);
  }
}
