import type { AgentState, SessionInfo } from '@hangar/shared';
import type { DesktopNotification } from '../platform.js';

/**
 * Turns what coding agents in sessions report (SessionInfo.agent, from their hooks) into at most
 * one desktop notification per episode: when one starts waiting for the user (a permission, a
 * question), and when one finishes a turn it was working on. The first sight of a session says
 * nothing (the user did not miss that change), and nor do repeats of a state.
 */
export class AgentAttention {
  private readonly seen = new Map<string, AgentState>();

  /** A host's sessions as it reported them; returns what to tell the user. */
  observe(host: string, sessions: readonly SessionInfo[]): DesktopNotification[] {
    const notes: DesktopNotification[] = [];
    const present = new Set<string>();
    for (const session of sessions) {
      if (!session.agent) continue;
      const key = `${host}/${session.name}`;
      present.add(key);
      const before = this.seen.get(key);
      const now = session.agent.state;
      this.seen.set(key, now);
      if (before === undefined || before === now) continue;
      if (now === 'waiting_input') {
        notes.push({ title: `${key} needs you`, body: session.agent.detail ?? 'Claude is waiting for your answer.' });
      } else if (now === 'idle' && (before === 'running' || before === 'waiting_input')) {
        notes.push({ title: `${key} is done`, body: 'Claude finished its turn; it waits for your next prompt.' });
      }
    }
    for (const key of this.seen.keys()) {
      if (key.startsWith(`${host}/`) && !present.has(key)) this.seen.delete(key);
    }
    return notes;
  }

  /** The session's agent reports through hooks: its bell would only say the same thing again. */
  tracks(host: string, session: string): boolean {
    return this.seen.has(`${host}/${session}`);
  }
}
