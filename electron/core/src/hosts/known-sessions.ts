import type { SessionInfo, TmuxServerState } from '@hangar/shared';
import { HostListings } from './host-listings.js';

export interface SessionList {
  sessions: SessionInfo[];
  tmux: TmuxServerState | null;
}

/**
 * Each linked host's session list as it last said it, kept current by its sessions.changed
 * events: `hangar session ls`, completion and the windows' lists through a running core are
 * answered from here (issue 18: ten hosts each running tmux for every listing took most of a
 * second), while the core's own changes (create, kill, attach) and a dropped link forget it.
 *
 * The agent pushes a new list whenever tmux, an attach or an agent's status changes it, and when
 * its tmux server is gone (it looks every second; no hook tells that). For what still goes untold
 * (an older agent's killed server, a host whose hooks could not be set: a data dir path with
 * unusual characters), each answer from here also asks the host again in the background, at most
 * once every 5 s.
 */
export type KnownSessions = HostListings<SessionList, void, SessionList, 'sessions.changed'>;

export function knownSessions(now?: () => number): KnownSessions {
  const copy = ({ sessions, tmux }: SessionList): SessionList => ({ sessions, tmux });
  return new HostListings(
    {
      event: 'sessions.changed',
      refreshGapMs: 5000,
      read: copy,
      keep: copy,
      refresh: () => undefined,
      merge: (_known, pushed) => copy(pushed),
    },
    now,
  );
}
