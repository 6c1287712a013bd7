import Database from 'better-sqlite3';
import { HangarError } from '@hangar/shared';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readRunFile, processAlive } from '../service/run-file.js';
import { SESSION_PREFIX, tmuxSocketName } from '../sessions/tmux.js';
import { agentDb } from '../store/stored-rows.js';
import { linkedVersion, previousLink } from '../update/versions.js';
import type { RelayStatus } from '../relay/index.js';
import { giveSidecarsBack, relayLink } from './enrollment.js';
import { currentLink, describeService, type InstallLayout, type InstallRecord } from './layout.js';
import type { Runner } from './plan.js';
import { serviceControl, type ServiceState } from './service-control.js';

export interface AgentStatus {
  service: ServiceState & { kind: string };
  version: { current?: string; previous?: string; running?: string; running_pid?: number };
  data_dir: string;
  listen: { configured: string; answering?: string };
  /** The relay link as the serving agent recorded it (relay/status.ts); `not serving` when none runs. */
  relay: { state: 'not_enrolled' } | RelayStatus;
  devices: string[];
  sessions: number | undefined;
  jobs: Record<string, number>;
}

export async function collectStatus(
  record: InstallRecord,
  layout: InstallLayout,
  run: Runner,
  uid: number,
): Promise<AgentStatus> {
  const service = await serviceControl(layout, uid).state(run);
  const running = readRunFile(record.data_dir);
  const alive = running && processAlive(running.pid) ? running : undefined;
  const counts = readAgentDb(record.data_dir);
  const current = linkedVersion(currentLink(layout));
  const previous = linkedVersion(previousLink(layout));
  return {
    service: { ...service, kind: describeService(layout) },
    version: {
      ...(current ? { current } : {}),
      ...(previous ? { previous } : {}),
      ...(alive ? { running: alive.version, running_pid: alive.pid } : {}),
    },
    data_dir: record.data_dir,
    listen: { configured: record.listen, ...(alive ? { answering: alive.address } : {}) },
    relay: counts.relay ?? { state: 'not_enrolled' },
    devices: counts.devices,
    sessions: await countSessions(record.data_dir, run),
    jobs: counts.jobs,
  };
}

export function formatStatus(status: AgentStatus): string {
  const { version } = status;
  const jobs = Object.entries(status.jobs).map(([state, count]) => `${count} ${state}`);
  const rows: [string, string][] = [
    [
      'service',
      `${status.service.state}${status.service.pid ? `, pid ${status.service.pid}` : ''} — ${status.service.kind}`,
    ],
    [
      'version',
      `${version.current ?? 'none'} current${version.previous ? `, ${version.previous} previous` : ''}; ` +
        (version.running ? `${version.running} running (pid ${version.running_pid})` : 'not running'),
    ],
    ['data', status.data_dir],
    [
      'listen',
      `${status.listen.configured}${status.listen.answering ? ` (answering on ${status.listen.answering})` : ''}`,
    ],
    ['relay', formatRelay(status.relay)],
    ...(status.relay.state !== 'not_enrolled'
      ? [['billing', formatBilling(status.relay.billing)] as [string, string]]
      : []),
    [
      'devices',
      status.devices.length === 0 ? 'none paired' : `${status.devices.length} paired: ${status.devices.join(', ')}`,
    ],
    ['sessions', status.sessions === undefined ? 'unknown (no tmux server)' : String(status.sessions)],
    ['jobs', jobs.length === 0 ? 'none' : jobs.join(', ')],
  ];
  return rows.map(([name, value]) => `${`${name}:`.padEnd(10)}${value}`).join('\n') + '\n';
}

/** `trial, 240 minutes left, entitlement valid until …; 3 minutes not yet sent to the relay`. */
function formatBilling(billing: RelayStatus['billing']): string {
  if (billing === null) return 'no entitlement from the relay yet: build jobs wait for it to connect once';
  if (!billing.metered) return 'not metered (billing is off on this relay)';
  const allows =
    billing.reason !== null
      ? `build jobs refused (${billing.reason})`
      : billing.minutes_left === null
        ? 'no cap on minutes'
        : `${billing.minutes_left} minutes left`;
  const until = `entitlement valid until ${new Date(billing.valid_until).toLocaleString()}`;
  const unsent = billing.unsent_minutes > 0 ? `; ${billing.unsent_minutes} minute(s) not yet sent to the relay` : '';
  return `${billing.plan}, ${allows}, ${until}${unsent}`;
}

/** `online on https://relay.example as "mini" (host_…) since 10:42:07`, or the state and its last error. */
function formatRelay(relay: AgentStatus['relay']): string {
  if (relay.state === 'not_enrolled') return 'not enrolled (hangar-agent enroll --token …, or install --token)';
  const who = `as "${relay.name}" (${relay.host_id})`;
  const since = relay.since !== null ? ` since ${new Date(relay.since).toLocaleTimeString()}` : '';
  const pending = relay.first_links_pending > 0 ? `; ${relay.first_links_pending} first link(s) to come` : '';
  switch (relay.state) {
    case 'online':
      return `online on ${relay.relay_url} ${who}${since}${pending}`;
    case 'not serving':
      return `enrolled on ${relay.relay_url} ${who}; offline there: the agent is not running`;
    default:
      // connecting, offline (retrying) or stopped (the relay said to stop dialing: removed there).
      return `${relay.state}: relay ${relay.relay_url} ${who}${since}${relay.error ? `; last error: ${relay.error}` : ''}`;
  }
}

/**
 * Paired devices, job counts and the relay link, read-only from the agent's database. Run as
 * root on a system install, SQLite may create the WAL's shared-memory file; it is handed back to
 * the database's owner, or the agent (not root) could no longer open its own database.
 */
function readAgentDb(dataDir: string): { devices: string[]; jobs: Record<string, number>; relay: RelayStatus | null } {
  try {
    if (existsSync(dataDir)) accessSync(dataDir, constants.R_OK | constants.X_OK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error;
    throw new HangarError(
      'E_BAD_REQUEST',
      `${dataDir} belongs to the agent's user and cannot be read by you: run sudo hangar-agent status`,
    );
  }
  const file = join(dataDir, 'agent.db');
  if (!existsSync(file)) return { devices: [], jobs: {}, relay: null };
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const devices = agentDb
      .rows(
        db,
        'paired_devices',
        z.object({ name: z.string() }),
        db.prepare('SELECT name FROM paired_devices ORDER BY paired_at').all(),
      )
      .map((row) => row.name);
    const jobs = Object.fromEntries(
      agentDb
        .rows(
          db,
          'jobs',
          z.object({ state: z.string(), n: z.number().int() }),
          db.prepare('SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state').all(),
        )
        .map((row) => [row.state, row.n]),
    );
    return { devices, jobs, relay: relayLink(dataDir) };
  } finally {
    db.close();
    giveSidecarsBack(dataDir);
  }
}

/** The agent's sessions on its tmux socket (the data dir owner's), or undefined when no server runs. */
async function countSessions(dataDir: string, run: Runner): Promise<number | undefined> {
  if (!existsSync(dataDir)) return undefined;
  const owner = statSync(dataDir).uid;
  const socket = join(process.env['TMUX_TMPDIR'] ?? '/tmp', `tmux-${owner}`, tmuxSocketName(dataDir));
  const result = await run(['tmux', '-S', socket, 'list-sessions', '-F', '#{session_name}']);
  if (result.code !== 0) return undefined;
  return result.stdout.split('\n').filter((name) => name.startsWith(SESSION_PREFIX)).length;
}
