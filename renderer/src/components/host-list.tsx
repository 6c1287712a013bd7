import { formatRoundTrip, visibleText, type AgentStatus, type HostView, type TmuxServerState } from '../api/index.js';
import type { HostSessions } from '../views/use-hangar-data.js';

export interface HostListProps {
  hosts: HostView[] | undefined;
  error: string | undefined;
  sessions: Record<string, HostSessions>;
  /** `host/session` keys of sessions that rang their bell (shown until opened). */
  bells?: ReadonlySet<string>;
  onAttach(host: string, session: string): void;
  onNewSession(host: string): void;
  onAddHost(): void;
  onRename(host: string): void;
  onRemove(host: string): void;
  onRetry(): void;
}

const STATUS_WORDS = { online: 'online', connecting: 'connecting…', offline: 'offline' } as const;

/**
 * A host's state in words: its link here; for a host of the account not linked, what the relay says,
 * or that the relay cannot be reached. Paired hosts are never "relay unreachable".
 */
export function hostStatusWord(host: HostView): string {
  const relayDown = host.account?.presence === 'relay_unreachable';
  if (host.status === 'online') return relayDown ? 'online, relay unreachable' : 'online';
  if (relayDown) return 'relay unreachable';
  if (host.account?.presence === 'online' && host.status !== 'connecting') {
    return host.error ? 'online, not linked' : 'online at the relay';
  }
  if (host.account && host.status === 'offline') return 'offline';
  return STATUS_WORDS[host.status];
}

function dotClass(host: HostView): string {
  if (host.status === 'online') return 'status-online';
  if (host.account?.presence === 'relay_unreachable') return 'status-unreachable';
  if (host.account?.presence === 'online' || host.status === 'connecting') return 'status-connecting';
  return 'status-offline';
}

function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** Every host with its status, load and sessions; the sidebar of the main window. */
export function HostList(props: HostListProps) {
  const { hosts, error } = props;
  if (error !== undefined && hosts === undefined) {
    return (
      <div className="empty-state" role="alert">
        <p>Could not load your hosts: {error}</p>
        <button type="button" onClick={props.onRetry}>
          Try again
        </button>
      </div>
    );
  }
  if (hosts === undefined) return <p className="empty-state">Loading hosts…</p>;
  if (hosts.length === 0) {
    return (
      <div className="empty-state">
        <p>No hosts yet.</p>
        <p>
          Add a host: run <code>hangar-agent pair</code> on it, then Add host… with the address and code it prints. Or
          sign in and Enroll a host… with one line.
        </p>
        <button type="button" onClick={props.onAddHost}>
          Add host…
        </button>
      </div>
    );
  }
  return (
    <ul className="host-list" aria-label="Hosts">
      {hosts.map((host) => (
        <HostItem {...props} key={host.name} host={host} hostSessions={props.sessions[host.name]} />
      ))}
    </ul>
  );
}

function HostItem(props: HostListProps & { host: HostView; hostSessions: HostSessions | undefined }) {
  const { host } = props;
  const stats = host.stats;
  const word = hostStatusWord(host);
  return (
    <li className={`host host-${host.status}`} aria-label={`${host.name}, ${word}`}>
      <div className="host-header">
        <span className={`status-dot ${dotClass(host)}`} aria-hidden="true" />
        <strong className="host-name">{host.name}</strong>
        <span className="host-status">{word}</span>
      </div>
      <div className="host-meta">
        {host.info ? visibleText(`${host.info.os} ${host.info.arch}`) : host.address}
        {host.embedded ? ' · this computer' : ''}
        {host.account ? ` · via ${host.via}` : ''}
        {host.keys_from_relay ? " · keys: the relay's word (this computer was approved without a code)" : ''}
        {host.status === 'online' && typeof host.rtt_ms === 'number' ? ` · ${formatRoundTrip(host.rtt_ms)}` : ''}
        {!word.startsWith('online') && host.last_seen !== null ? ` · last seen ${ago(host.last_seen)}` : ''}
      </div>
      {host.status === 'offline' && <OfflineReason host={host} />}
      <UpdateAvailable host={host} />
      {stats && (
        <>
          <div className="host-caps" aria-label="Capabilities">
            {capabilitiesFor(host.info?.os).map((cap) => (
              <span key={cap} className={stats.capabilities[cap] ? 'cap cap-on' : 'cap cap-off'}>
                {cap === 'tart' ? 'Tart' : cap}
                {stats.capabilities[cap] ? '' : ' (missing)'}
              </span>
            ))}
          </div>
          <dl className="host-load">
            <dt>CPU</dt>
            <dd>{percent(stats.load[0]! / stats.cpus)}</dd>
            <dt>Memory</dt>
            <dd>{percent(1 - stats.mem_free / Math.max(1, stats.mem_total))}</dd>
            <dt>Disk</dt>
            <dd>{percent(1 - stats.disk_free / Math.max(1, stats.disk_total))}</dd>
            <dt>Jobs</dt>
            <dd>{stats.running_jobs} running</dd>
          </dl>
        </>
      )}
      <TmuxLost state={props.hostSessions?.tmux ?? stats?.tmux} />
      <SessionList {...props} />
      <div className="host-actions">
        <button type="button" onClick={() => props.onNewSession(host.name)} disabled={host.status !== 'online'}>
          New session
        </button>
        {host.via !== 'relay' && (
          // A host known only through the account is named by it until this computer links to it.
          <button type="button" onClick={() => props.onRename(host.name)} aria-label={`Rename ${host.name}`}>
            Rename
          </button>
        )}
        <button type="button" onClick={() => props.onRemove(host.name)} aria-label={`Remove ${host.name}`}>
          Remove
        </button>
      </div>
    </li>
  );
}

/** The host's agent knows of a newer release on its channel: how to apply it (on the host, health-checked). */
function UpdateAvailable({ host }: { host: HostView }) {
  const update = host.info?.update;
  if (!update?.available || !update.latest) return null;
  return (
    <p className="host-update" role="status" aria-label={`Update available for ${host.name}`}>
      Update available: hangar-agent {visibleText(update.latest)} (runs {visibleText(update.current)}). On the host run{' '}
      <code>hangar-agent update</code>; it rolls back by itself if the new version does not come up.
    </p>
  );
}

function SessionList(props: HostListProps & { host: HostView; hostSessions: HostSessions | undefined }) {
  const { host, hostSessions: sessions } = props;
  if (!sessions) return null;
  if (sessions.error) return <p className="host-error">Sessions unavailable: {visibleText(sessions.error)}</p>;
  if (sessions.sessions.length === 0) return <p className="host-hint">No sessions.</p>;
  return (
    <ul className="session-list" aria-label={`Sessions on ${host.name}`}>
      {sessions.sessions.map((s) => (
        <li key={s.name}>
          <button
            type="button"
            className="session"
            onClick={() => props.onAttach(host.name, s.name)}
            aria-label={`Attach to ${host.name}/${s.name}`}
          >
            <span className="session-name">{s.name}</span>
            {props.bells?.has(`${host.name}/${s.name}`) && (
              <span className="session-bell" role="status" aria-label={`${host.name}/${s.name} rang its bell`}>
                ●
              </span>
            )}
            {s.agent && <AgentBadge target={`${host.name}/${s.name}`} agent={s.agent} />}
            <span className="session-command">{visibleText(s.command.join(' '))}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

const AGENT_LABELS: Record<AgentStatus['state'], string> = {
  starting: 'starting',
  idle: 'idle',
  running: 'working',
  waiting_input: 'needs you',
};

/** What the coding agent in a session is doing, from its own hooks; its words on hover. */
function AgentBadge({ target, agent }: { target: string; agent: AgentStatus }) {
  const label = AGENT_LABELS[agent.state];
  const detail = agent.detail === null ? null : visibleText(agent.detail);
  return (
    <span
      className={`agent-badge agent-${agent.state}`}
      role="status"
      aria-label={`Claude in ${target}: ${label}${detail ? ` (${detail})` : ''}`}
      title={detail ?? undefined}
    >
      {label}
    </span>
  );
}

/** The host's tmux server went away and took sessions with it: said, not shown as an empty list. */
function TmuxLost({ state }: { state: TmuxServerState | null | undefined }) {
  if (!state || state.ok) return null;
  return (
    <p className="host-error" role="alert">
      Sessions lost: {visibleText(state.message ?? '')}
    </p>
  );
}

function OfflineReason({ host }: { host: HostView }) {
  if (host.account?.presence === 'relay_unreachable' && host.error === null) {
    return (
      <div className="host-error" role="status">
        <p>The account’s relay cannot be reached; hosts paired directly still work. Hangar reconnects by itself.</p>
      </div>
    );
  }
  if (host.account?.presence === 'online' && host.error === null) return null;
  if (host.account && host.error !== null) {
    // The link's own words say what to do (get this computer approved, the relay may be lying…).
    return (
      <div className="host-error" role="status">
        <p>{visibleText(host.error)}</p>
      </div>
    );
  }
  const fix = host.embedded
    ? 'The embedded agent is not running; restart Hangar (npm start).'
    : host.account
      ? `On ${host.name}, check the agent is running: hangar-agent serve --data ~/.hangar-agent.`
      : `On ${host.name}, check the agent is running: hangar-agent serve (it listens on ${host.address}).`;
  return (
    <div className="host-error" role="status">
      <p>{host.error === null ? 'Not reachable.' : visibleText(host.error)}</p>
      <p>{fix}</p>
    </div>
  );
}

function percent(fraction: number): string {
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

/**
 * What the host's platform can use: Tart runs only on macOS and bubblewrap only on Linux, so a
 * Linux host is not shown "Tart (missing)". A host whose OS is not known yet shows all three.
 */
function capabilitiesFor(os: string | undefined): ('tmux' | 'tart' | 'bubblewrap')[] {
  const platform = os?.split(' ')[0];
  if (platform === 'linux') return ['tmux', 'bubblewrap'];
  if (platform === 'darwin') return ['tmux', 'tart'];
  return ['tmux', 'tart', 'bubblewrap'];
}
