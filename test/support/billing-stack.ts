import { execFile } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { signUsageRecord, usageRecordKey, toHex } from '@hangar/shared';
import { startBillingRelay, type BillingRelay } from '../../relay/test/support/billing-fixture.js';
import { loadOrCreateAgentKey } from '../../host-agent/src/identity/keys.js';
import { dirFor, type Cleanups } from './cleanups.js';
import { HANGAR_BIN, hangar, type CliResult } from './processes.js';
import { enroll, hostsLs, signupCli, startHostMachine, waitForHost, type HostMachine } from './relay-stack.js';

/**
 * Billing end to end: a host enrolled in an account runs real build jobs; what its agent.db holds
 * (metered attempts, usage records waiting for the relay) is read from the file, as `status` would.
 */

/** `hangar …` from an empty project folder (what `hangar run` packs), as a user would run it. */
export function hangarIn(home: string, workspace: string, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [HANGAR_BIN, ...args],
      { cwd: workspace, env: { ...process.env, HANGAR_HOME: home }, timeout: timeoutMs },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

export type EnrolledHost = HostMachine;

/** A host machine with the agent serving (info logs: the tests read its entitlement lines), enrolled as `name`. */
export async function enrolledHost(cleanups: Cleanups, laptop: string, name: string): Promise<EnrolledHost> {
  const host = await startHostMachine(cleanups);
  await enroll(laptop, host, name);
  await waitForHost(laptop, name, (h) => h.status === 'online');
  // A build job needs the entitlement the relay pushes on connecting (sent before it says "online").
  await entitlementLogged(host, '"plan":');
  return host;
}

/** A relay with billing on, in this process; entitlements renewed every half second (hourly by default). */
async function billingRelay(cleanups: Cleanups): Promise<BillingRelay> {
  const billing = await startBillingRelay({}, { entitlementRenewMs: 500 });
  cleanups.push(() => billing.stop());
  return billing;
}

/** A billing relay; a laptop signed up to a trial account there, an empty project folder, and a host enrolled as "mini". */
export async function trialAccountWithHost(cleanups: Cleanups) {
  const billing = await billingRelay(cleanups);
  const laptop = dirFor(cleanups, 'laptop');
  const project = dirFor(cleanups, 'project');
  expect((await signupCli(laptop, billing.relay.url, 'owner@example.com')).code).toBe(0);
  const host = await enrolledHost(cleanups, laptop, 'mini');
  await entitlementLogged(host, '"plan":"trial"');
  const listed = (await hostsLs(laptop)).find((h) => h.name === 'mini')!;
  const account = JSON.parse((await hangar(laptop, ['account', '--json'])).stdout) as {
    account: { account_id: string };
  };
  return { billing, laptop, project, host, hostId: listed.account!.host_id, accountId: account.account.account_id };
}

export function agentDb(dataDir: string): Database.Database {
  return new Database(join(dataDir, 'agent.db'), { readonly: true, fileMustExist: true });
}

/** The usage keys of every minute the agent metered (each started minute of each attempt). */
export async function meteredKeys(dataDir: string): Promise<string[]> {
  const hostKey = toHex((await loadOrCreateAgentKey(dataDir)).signer.publicKey);
  const db = agentDb(dataDir);
  try {
    const attempts = db.prepare('SELECT attempt_id, minutes FROM metered_attempts').all() as {
      attempt_id: string;
      minutes: number;
    }[];
    return attempts.flatMap((a) =>
      Array.from({ length: a.minutes }, (_, minute) =>
        usageRecordKey({ host_key: hostKey, attempt_id: a.attempt_id, minute_index: minute }),
      ),
    );
  } finally {
    db.close();
  }
}

/** Usage records the agent still holds (not acknowledged by the relay). */
export function pendingRecords(dataDir: string): number {
  const db = agentDb(dataDir);
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM usage_outbox').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for the agent to log an entitlement from the relay matching `fields` (its info line). */
export function entitlementLogged(host: EnrolledHost, fields: string, timeoutMs = 20_000): Promise<true> {
  return waitUntil(
    `an entitlement with ${fields} in the agent's log`,
    () =>
      host.agent
        .stderr()
        .split('\n')
        .some((line) => line.includes('entitlement from the relay') && line.includes(fields)) || undefined,
    timeoutMs,
  );
}

/** Calls of reportMinutes so far: each reports attempts of its own. */
let reports = 0;

/**
 * The host's own minutes, signed with its key as its agent signs them: many parallel attempts of
 * the last few seconds by the relay's clock, none before the account was created (such minutes
 * count in none of its periods; a fast run reaches here within 5 s of signing up).
 */
export async function reportMinutes(billing: BillingRelay, host: EnrolledHost, hostId: string, minutes: number) {
  reports += 1;
  const startedAt = Math.max(billing.clock.now() - 5_000, await accountCreatedAt(billing, hostId));
  const key = await loadOrCreateAgentKey(host.shell.agentData);
  const records = Array.from({ length: minutes }, (_, i) => {
    const job = `j-${startedAt.toString(16)}r${reports}n${Math.floor(i / 5)}`;
    return signUsageRecord(key.signer, {
      attempt_id: `${job}:1`,
      job_id: job,
      minute_index: i % 5,
      started_at: startedAt,
    });
  });
  for (let at = 0; at < records.length; at += 150) {
    const reported = await billing.relay.client.call('usage.report', {
      host_id: hostId,
      records: records.slice(at, at + 150),
    });
    expect(reported.refused).toEqual([]);
  }
}

async function accountCreatedAt(billing: BillingRelay, hostId: string): Promise<number> {
  const row = await billing.relay.relay.context.db
    .selectFrom('hosts')
    .innerJoin('accounts', 'accounts.id', 'hosts.account_id')
    .select('accounts.created_at')
    .where('hosts.id', '=', hostId)
    .executeTakeFirstOrThrow();
  return row.created_at;
}
