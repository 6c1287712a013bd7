import Database from 'better-sqlite3';
import { HangarError } from '@hangar/shared';
import { accessSync, chownSync, constants, existsSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readRunFile, processAlive } from '../service/run-file.js';
import { SESSION_PREFIX, tmuxSocketName } from '../sessions/tmux.js';
import { linkedVersion, previousLink } from '../update/versions.js';
import { enrollment } from './enrollment.js';
import { currentLink, describeService, type InstallLayout, type InstallRecord } from './layout.js';
import type { Runner } from './plan.js';
import { serviceControl, type ServiceState } from './service-control.js';

export interface AgentStatus {
  service: ServiceState & { kind: string };
  version: { current?: string; previous?: string; running?: string; running_pid?: number };
  data_dir: string;
  listen: { configured: string; answering?: string };
  /** Filled by the relay integration (enrollment.relayLink); `not_built` until then, never a guess. */
  relay: { state: 'not_built' } | { state: 'not_enrolled' } | { state: 'online' | 'offline'; relay: string };
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
  const link = await enrollment.relayLink(record.data_dir);
  const counts = readCounts(record.data_dir);
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
    relay: !enrollment.available
      ? { state: 'not_built' }
      : link
        ? { state: link.online ? 'online' : 'offline', relay: link.relay }
        : { state: 'not_enrolled' },
    devices: counts.devices,
    sessions: await countSessions(record.data_dir, run),
    jobs: counts.jobs,
  };
}

export function formatStatus(status: AgentStatus): string {
  const { version } = status;
  const jobs = Object.entries(status.jobs).map(([state, count]) => `${count} ${state}`);
  const relay =
    status.relay.state === 'not_built'
      ? 'not part of this build (the relay integration adds enrollment and this line)'
      : status.relay.state === 'not_enrolled'
        ? 'not enrolled'
        : `${status.relay.state} (${status.relay.relay})`;
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
    ['relay', relay],
    [
      'devices',
      status.devices.length === 0 ? 'none paired' : `${status.devices.length} paired: ${status.devices.join(', ')}`,
    ],
    ['sessions', status.sessions === undefined ? 'unknown (no tmux server)' : String(status.sessions)],
    ['jobs', jobs.length === 0 ? 'none' : jobs.join(', ')],
  ];
  return rows.map(([name, value]) => `${`${name}:`.padEnd(10)}${value}`).join('\n') + '\n';
}

/**
 * Paired devices and job counts, read-only from the agent's database. Run as root on a system
 * install, SQLite may create the WAL's shared-memory file; it is handed to the database's owner,
 * or the agent (not root) could no longer open its own database.
 */
function readCounts(dataDir: string): { devices: string[]; jobs: Record<string, number> } {
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
  if (!existsSync(file)) return { devices: [], jobs: {} };
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const devices = (db.prepare('SELECT name FROM paired_devices ORDER BY paired_at').all() as { name: string }[]).map(
      (row) => row.name,
    );
    const jobs = Object.fromEntries(
      (
        db.prepare('SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state').all() as {
          state: string;
          n: number;
        }[]
      ).map((row) => [row.state, row.n]),
    );
    return { devices, jobs };
  } finally {
    db.close();
    const owner = statSync(file);
    for (const suffix of ['-wal', '-shm']) {
      const side = file + suffix;
      if (existsSync(side) && lstatSync(side).uid !== owner.uid) chownSync(side, owner.uid, owner.gid);
    }
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
