import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { TMUX_SERVER_OK, type TmuxServerState } from '@hangar/shared';
import type { Logger } from 'pino';

/**
 * Tells a tmux server that went away with sessions on it (killed, crashed, OOM-killed) from one
 * that exited because its last session ended (tmux's exit-empty), so that a lost server is
 * reported and not shown as "no sessions". It learns from the agent's own listings: the server's
 * pid and the sessions on it at the last look. When a later look finds no server (or another
 * one), every session of the last look is lost unless its command ended on its own (the exit
 * wrapper wrote its exit file before tmux closed it) or the agent killed it. A session killed by
 * hand (tmux kill-session) as the last one looks the same as a killed server, and is reported so.
 *
 * What happens next: nothing is restarted (the programs in the sessions are gone, and tmux cannot
 * bring them back); the next session the user makes starts a fresh server, which clears the
 * report. An agent started after its server went away (a reboot) has no earlier look: it reports
 * nothing.
 */
export class TmuxServerWatch {
  private serverPid: number | undefined;
  /** Sessions on the server at the last look. */
  private running = new Set<string>();
  /**
   * Sessions gone from a server not yet seen alive since: kept for one more look, because a
   * server shutting down (kill-server) lists no sessions just before it exits.
   */
  private vanished = new Set<string>();
  /** Ended by the agent (session.kill): never a loss, until a session of that name is made again. */
  private readonly endedByAgent = new Set<string>();
  private lost: TmuxServerState | undefined;
  /** Listings run concurrently: each is numbered when it asks tmux, and a late, older answer is dropped. */
  private issued = 0;
  private applied = 0;
  /** The verdicts on a missing server still being made (gone() checks exit files). */
  private deciding: Promise<void> = Promise.resolve();

  constructor(
    private readonly sessionsDir: string,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The server's pid while it was last seen running sessions (whose loss would be reported). */
  get livePid(): number | undefined {
    return this.running.size > 0 ? this.serverPid : undefined;
  }

  state(): TmuxServerState {
    return this.lost ?? TMUX_SERVER_OK;
  }

  /** A listing is about to ask tmux: its number, for found() or missing(). */
  begin(): number {
    return ++this.issued;
  }

  /** Listing `seq` found the server (its pid, when it listed any session) running these sessions. */
  async found(seq: number, pid: number | undefined, names: readonly string[]): Promise<void> {
    if (!this.current(seq)) return;
    if (pid !== undefined && this.serverPid !== undefined && pid !== this.serverPid) await this.gone();
    // Seen alive (its pid on a listed session): whatever is gone ended while the server lived on.
    // An empty listing proves less: the server may be on its way out, taking them with it.
    this.vanished = pid === undefined ? new Set([...this.vanished, ...this.running]) : new Set();
    this.serverPid = pid ?? this.serverPid;
    this.running = new Set(names);
  }

  /**
   * Listing `seq` found no server on the socket. Resolves once every verdict on a missing server
   * so far is in: a listing that finds the sessions already taken by another one's verdict (the
   * agent's own 1 s check) must not answer before that verdict is recorded.
   */
  async missing(seq: number): Promise<void> {
    if (this.current(seq)) {
      this.deciding = Promise.all([this.deciding, this.gone()]).then(
        () => undefined,
        () => undefined,
      );
    }
    await this.deciding;
  }

  /** The agent is about to end this session itself (session.kill): its absence is no loss. */
  ending(name: string): void {
    this.endedByAgent.add(name);
  }

  /** Session `name` was made, on a fresh server if the last one was lost: the loss has been seen. */
  started(name: string): void {
    this.endedByAgent.delete(name);
    this.lost = undefined;
  }

  private current(seq: number): boolean {
    if (seq < this.applied) return false;
    this.applied = seq;
    return true;
  }

  private async gone(): Promise<void> {
    // Taken before the first await, so two listings that both find no server decide once.
    const pid = this.serverPid;
    const candidates = [...this.running, ...this.vanished].filter((name) => !this.endedByAgent.has(name));
    this.serverPid = undefined;
    this.running = new Set();
    this.vanished = new Set();
    if (pid === undefined || candidates.length === 0) return;
    const lost: string[] = [];
    for (const name of candidates) if (!(await this.exitedOnItsOwn(name))) lost.push(name);
    if (lost.length === 0) return;
    const names = [...new Set([...(this.lost?.lost_sessions ?? []), ...lost])];
    this.lost = {
      ok: false,
      message:
        `the tmux server (pid ${pid}) exited while ${names.length === 1 ? 'session' : 'sessions'} ` +
        `${names.map((n) => `"${n}"`).join(', ')} ran in it (it was killed or crashed); ` +
        `${names.length === 1 ? 'it was' : 'they were'} lost. A new session starts a fresh tmux server`,
      lost_sessions: names,
      lost_at: this.now(),
    };
    this.logger?.warn({ tmux_pid: pid, lost: names }, 'the tmux server went away with sessions on it');
  }

  /** The exit wrapper (sessions/index.ts) writes this file when the command ends, before tmux closes the pane. */
  private async exitedOnItsOwn(name: string): Promise<boolean> {
    return access(join(this.sessionsDir, name, 'exit')).then(
      () => true,
      () => false, // no exit file: its command did not end on its own
    );
  }
}
