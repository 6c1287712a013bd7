import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { UsageRecord, encodeEnrollToken, verifyUsageRecord } from '@hangar/shared';
import { Metering } from '../../src/billing/index.js';
import { loadOrCreateAgentKey } from '../../src/identity/keys.js';
import { enroll, relayStatus, RelayLink } from '../../src/relay/index.js';
import { AgentStore } from '../../src/store/db.js';
import { startBillingRelay, TEST_MINUTE_MS, type BillingRelay } from '../../../relay/test/support/billing-fixture.js';
import { signup, waitFor } from '../../../relay/test/support/relay-fixture.js';
import { useCleanups } from '../../../test/support/cleanups.js';

/**
 * The agent's metering against a real relay with billing on (in this process, Stripe stand-in):
 * minutes per started minute, signed with the host key, kept until acknowledged; hosts that are
 * not enrolled are never metered or refused. Through real jobs: test/e2e/billing-*.test.ts.
 */

const cleanups = useCleanups();

const silent = pino({ level: 'silent' });

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-metering-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function metering(dir: string, now?: () => number) {
  const store = AgentStore.open(dir);
  cleanups.push(() => store.dispose());
  const key = await loadOrCreateAgentKey(dir);
  const meter = new Metering({ store, signer: key.signer, logger: silent, flushEveryMs: 100, ...(now ? { now } : {}) });
  cleanups.push(() => meter.dispose());
  return { store, key, meter };
}

async function enrolledOn(billing: BillingRelay) {
  const owner = await signup(billing.relay.client);
  const dir = await dataDir();
  const token = await billing.relay.client.call(
    'hosts.enroll_token',
    { name: 'mini' },
    { accessToken: owner.session.access_token },
  );
  const line = encodeEnrollToken({
    v: 1,
    r: billing.relay.url,
    i: token.token_id,
    s: token.relay_secret,
    e: randomBytes(32).toString('hex'),
    d: owner.key.publicKey,
  });
  const enrolled = await enroll({ dataDir: dir, token: line, name: 'mini' });
  return { dir, enrolled };
}

function records(store: AgentStore): UsageRecord[] {
  return (store.db.prepare('SELECT record FROM usage_outbox ORDER BY key').all() as { record: string }[]).map((r) =>
    UsageRecord.parse(JSON.parse(r.record)),
  );
}

describe('metering build minutes on the agent', () => {
  it('a host that is not enrolled is never metered nor refused', async () => {
    const { store, meter } = await metering(await dataDir());
    expect(() => meter.admit()).not.toThrow();
    expect(meter.attemptStarted({ jobId: 'j-00000001', number: 1, startedAt: Date.now() })).toBeUndefined();
    expect(records(store)).toEqual([]);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM metered_attempts').get()).toEqual({ n: 0 });
  });

  it('each started minute is one record signed by the host key, kept until the relay acknowledges it, stored there once', async () => {
    const billing = await startBillingRelay({});
    cleanups.push(() => billing.stop());
    const { dir, enrolled } = await enrolledOn(billing);
    let clock = Date.now();
    const { store, key, meter } = await metering(dir, () => clock);
    // No entitlement yet: a build job waits for the host to meet its relay once.
    expect(() => meter.admit()).toThrow(/no entitlement from its relay yet/);
    const link = RelayLink.start({
      store,
      signer: key.signer,
      listen: () => ({ host: '127.0.0.1', port: 7070 }),
      logger: silent,
      billing: meter,
      closeLinksOf: () => {},
      readTailnet: async () => ({ state: 'absent' }),
    });
    cleanups.push(() => link.dispose());
    await waitFor('an entitlement', () => meter.entitlement());
    expect(meter.entitlement()).toMatchObject({ plan: 'trial', minute_ms: TEST_MINUTE_MS, host_id: enrolled.host_id });
    expect(() => meter.admit()).not.toThrow();
    // What hangar-agent status shows of it.
    expect(relayStatus(dir)?.billing).toMatchObject({ plan: 'trial', metered: true, minutes_left: 300, reason: null });

    // An attempt of 2.5 minutes (of 1 s here): minutes 0, 1 and 2 started.
    const startedAt = clock;
    const attempt = meter.attemptStarted({ jobId: 'j-0000000a', number: 1, startedAt })!;
    clock += 2_500;
    attempt.ended(clock);
    const kept = records(store);
    expect(kept.map((r) => r.minute_index).sort()).toEqual([0, 1, 2]);
    expect(
      kept.every((r) => verifyUsageRecord(r) && r.attempt_id === 'j-0000000a:1' && r.started_at === startedAt),
    ).toBe(true);

    await waitFor('the records acknowledged', () => meter.pendingRecords() === 0);
    const stored = await billing.relay.relay.context.db
      .selectFrom('usage_records')
      .select(['attempt_id', 'minute_index'])
      .where('host_id', '=', enrolled.host_id)
      .execute();
    expect(stored.map((r) => r.minute_index).sort()).toEqual([0, 1, 2]);
  });

  it('an attempt a crash interrupted keeps the minutes recorded as they began, and is closed at the next start', async () => {
    const billing = await startBillingRelay({});
    cleanups.push(() => billing.stop());
    const { dir } = await enrolledOn(billing);
    const first = await metering(dir);
    // The entitlement a connected host would hold: fetched here through a socket once.
    const link = RelayLink.start({
      store: first.store,
      signer: first.key.signer,
      listen: () => ({ host: '127.0.0.1', port: 7070 }),
      logger: silent,
      billing: first.meter,
      closeLinksOf: () => {},
      readTailnet: async () => ({ state: 'absent' }),
    });
    await waitFor('an entitlement', () => first.meter.entitlement());
    link.dispose();
    first.meter.attemptStarted({ jobId: 'j-0000000b', number: 1, startedAt: Date.now() - 1_500 });
    first.meter.dispose(); // as a kill -9 would: the attempt never ended
    expect(records(first.store).length).toBe(2);
    expect(relayStatus(dir)?.billing?.unsent_minutes).toBe(2);

    const again = await metering(dir);
    const row = again.store.db.prepare('SELECT minutes, ended_at FROM metered_attempts').get() as {
      minutes: number;
      ended_at: number | null;
    };
    expect(row.minutes).toBe(2);
    expect(row.ended_at).not.toBeNull();
    expect(records(again.store).length).toBe(2);
  });
});
