import {
  ErrorShapeSchema,
  HangarError,
  jsonOrUndefined,
  parseEnrollToken,
  RelayClient,
  toHangarError,
} from '@hangar/shared';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { relayStatus, type RelayStatus } from '../relay/index.js';

/**
 * The installer's side of relay enrollment: `install --token` runs `hangar-agent enroll` as the
 * agent's own user before it installs anything, and status, install and update read the relay
 * link the running agent records (`relayStatus`) to show it and to wait for it.
 */

/** What `hangar-agent enroll --json` prints (relay/enroll.ts), parsed as it crosses the process. */
const EnrolledSchema = z.object({
  relay_url: z.string(),
  host_id: z.string(),
  account_id: z.string(),
  name: z.string(),
  first_link_expires_at: z.number(),
});
export type Enrolled = z.infer<typeof EnrolledSchema>;

/** What a plan may show of a token line: the relay it names and the token id, never its secrets. */
export function describeToken(token: string): { relay: string; tokenId: string } {
  const parsed = parseEnrollToken(token);
  return { relay: parsed.r, tokenId: parsed.i };
}

export interface EnrollAsAgentInput {
  /** The Node the service runs, and the package being installed (its bin/hangar-agent.js). */
  node: string;
  packageRoot: string;
  dataDir: string;
  token: string;
  name?: string;
  /** Linux --system: the service user, so every file enroll makes (keys, agent.db) is its own. */
  user?: { uid: number; gid: number; home: string };
  timeoutMs?: number;
}

/**
 * Runs `hangar-agent enroll` in a child process, as the service user on a system install: root
 * never writes into the agent's data dir (which that user controls), and the keys and database
 * come out owned by the user that serves them, with enroll's own modes (0700 dirs, 0600 files).
 * The token goes on stdin, not argv, so `ps` never shows it.
 */
export function enrollAsAgent(input: EnrollAsAgentInput): Promise<Enrolled> {
  const argv = [
    join(input.packageRoot, 'bin', 'hangar-agent.js'),
    'enroll',
    '--data',
    input.dataDir,
    '--token',
    '-',
    '--json',
    ...(input.name ? ['--name', input.name] : []),
  ];
  const child = spawn(input.node, argv, {
    cwd: input.dataDir,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...(input.user ? { HOME: input.user.home } : {}) },
    ...(input.user ? { uid: input.user.uid, gid: input.user.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(input.token);
  // The relay call has 15 s; making a TLS certificate on a small VPS takes a few more.
  const timer = setTimeout(() => child.kill('SIGKILL'), input.timeoutMs ?? 60_000);
  return new Promise<Enrolled>((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new HangarError('E_INTERNAL', `could not run hangar-agent enroll: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        const parsed = EnrolledSchema.safeParse(jsonOrUndefined(stdout));
        if (parsed.success) resolve(parsed.data);
        else
          reject(new HangarError('E_INTERNAL', `hangar-agent enroll printed something unexpected: ${stdout.trim()}`));
        return;
      }
      const shape = ErrorShapeSchema.safeParse(
        (jsonOrUndefined(stderr.trim().split('\n').at(-1) ?? '') as { error?: unknown } | undefined)?.error,
      );
      if (shape.success) reject(HangarError.from(shape.data));
      else {
        const why = signal
          ? `killed by ${signal} after ${Math.round((input.timeoutMs ?? 60_000) / 1000)} s`
          : `exit ${code}`;
        reject(new HangarError('E_INTERNAL', `hangar-agent enroll failed (${why}): ${stderr.trim() || 'no output'}`));
      }
    });
  });
}

/**
 * The relay link of the agent at `dataDir` (null: not enrolled), read as status does. Run as
 * root, SQLite may make the WAL's shared-memory file; it is handed back to the database's owner,
 * or the agent (not root) could no longer open its own database.
 */
export function relayLink(dataDir: string): RelayStatus | null {
  try {
    return relayStatus(dataDir);
  } finally {
    giveSidecarsBack(dataDir);
  }
}

export function giveSidecarsBack(dataDir: string): void {
  const file = join(dataDir, 'agent.db');
  if (!existsSync(file)) return;
  const owner = statSync(file);
  for (const suffix of ['-wal', '-shm']) {
    const side = file + suffix;
    if (existsSync(side) && lstatSync(side).uid !== owner.uid) chownSync(side, owner.uid, owner.gid);
  }
}

/** Whether the agent process `pid` holds its relay link up, by what it recorded; else what it shows. */
export function relayPresence(dataDir: string, pid: number): { online: boolean; detail: string } {
  const link = relayLink(dataDir);
  if (link === null) return { online: false, detail: 'answers locally but is not enrolled on a relay' };
  if (link.state === 'online' && link.pid === pid) return { online: true, detail: `online on ${link.relay_url}` };
  const state =
    link.pid !== null && link.pid !== pid ? `the link recorded is the old agent's (${link.state})` : link.state;
  return {
    online: false,
    detail: `answers locally but is not online on the relay ${link.relay_url} yet (${state}${link.error ? `: ${link.error}` : ''})`,
  };
}

/**
 * Whether a restart must bring the relay link back before it counts as healthy: the host is
 * enrolled and its agent is online there now. A relay that is down or unreachable from here is
 * not the new version's fault, so it does not fail (or roll back) an update.
 */
export function onlineOnRelay(dataDir: string): boolean {
  return relayLink(dataDir)?.state === 'online';
}

/**
 * A dry run's look at the relay a token names: `relay.info` only, which changes nothing there.
 * It cannot tell whether the token is still unused without spending it.
 */
export async function describeRelay(relayUrl: string): Promise<string> {
  try {
    const info = await new RelayClient({ url: relayUrl, timeoutMs: 5_000 }).call('relay.info', {});
    return `the relay at ${relayUrl} answers (hangar-relay ${info.version})`;
  } catch (error) {
    return `the relay at ${relayUrl} does not answer from here: ${toHangarError(error).message}`;
  }
}
