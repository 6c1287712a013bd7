import { describe, expect, it } from 'vitest';
import { RelayClient, signUsageRecord, usageRecordKey } from '@hangar/shared';
import {
  entitlementAgent,
  keysOf,
  useBillingRelay,
  upgrade,
  usageRecords,
  type BillingRelay,
  TEST_MINUTE_MS,
} from './support/billing-fixture.js';
import { STORAGE_KINDS, enroll, newKey, signup, waitFor } from './support/relay-fixture.js';

describe.each(STORAGE_KINDS)('build minutes (%s)', (kind) => {
  let billing: BillingRelay;
  let client: RelayClient;
  useBillingRelay(kind, (relay, relayClient) => ([billing, client] = [relay, relayClient]));

  /** Identifiers the stand-in accepted (each at most once: it refuses a second event with one). */
  const metered = (keys: string[]) => keys.filter((key) => billing.standIn.meterEvents.has(key));

  async function proAccountWithHost() {
    const owner = await signup(client);
    await upgrade(client, owner, billing.standIn);
    const { host, hostId } = await enroll(client, owner);
    return { owner, host, hostId };
  }

  it('minutes signed by the host are stored once each, acknowledged, and metered to Stripe once each', async () => {
    const { owner, host, hostId } = await proAccountWithHost();
    const records = usageRecords(host, 5);
    const keys = keysOf(records);
    const first = await client.call('usage.report', { host_id: hostId, records });
    expect(first).toEqual({ acked: keys, refused: [] });
    await waitFor('all five minutes at Stripe', () => metered(keys).length === 5);
    const events = keys.map((key) => billing.standIn.meterEvents.get(key));
    expect(events.every((event) => event.event_name === 'hangar_build_minutes' && event.payload.value === '1')).toBe(
      true,
    );
    const customer = [...billing.standIn.customers.values()].find(
      (c: { metadata: Record<string, string> }) => c.metadata['account_id'] === owner.session.account.account_id,
    );
    expect(events.every((event) => event.payload.stripe_customer_id === customer.id)).toBe(true);
    expect(events[2].timestamp).toBe(Math.floor((records[2]!.started_at + 2 * TEST_MINUTE_MS) / 1000));

    // The agent lost the ack and sends the same batch again: acked again, counted once.
    const sentBefore = billing.standIn.requests.filter(
      (r: { path: string }) => r.path === '/v1/billing/meter_events',
    ).length;
    expect(await client.call('usage.report', { host_id: hostId, records })).toEqual({ acked: keys, refused: [] });
    const status = await client.call('billing.status', {}, { accessToken: owner.session.access_token });
    expect(status.minutes.used).toBe(5);
    expect(status.minutes_per_day.reduce((n, day) => n + day.minutes, 0)).toBe(5);
    await billing.standIn.idle();
    const sentAfter = billing.standIn.requests.filter(
      (r: { path: string }) => r.path === '/v1/billing/meter_events',
    ).length;
    expect(sentAfter).toBe(sentBefore); // nothing new to send
  });

  it('a record not signed by the reporting host is refused and never counted', async () => {
    const { owner, host, hostId } = await proAccountWithHost();
    const [good] = usageRecords(host, 1);
    const stranger = newKey();
    const foreign = signUsageRecord(stranger.signer, {
      attempt_id: 'a-x1',
      job_id: 'j-00000001',
      minute_index: 0,
      started_at: Date.now(),
    });
    const tampered = { ...good!, minute_index: 7 };
    const result = await client.call('usage.report', { host_id: hostId, records: [good!, foreign, tampered] });
    expect(result.acked).toEqual([usageRecordKey(good!)]);
    expect(result.refused.map((r) => r.code)).toEqual(['E_FORBIDDEN', 'E_AUTH_BAD_SIGNATURE']);
    expect(result.refused[0]!.key).toBe(usageRecordKey(foreign));
    const status = await client.call('billing.status', {}, { accessToken: owner.session.access_token });
    expect(status.minutes.used).toBe(1);
    // An unknown host is refused whole.
    await expect(
      client.call('usage.report', { host_id: `host_${'1'.repeat(32)}`, records: [good!] }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('minutes reported over the agent socket are acknowledged by batch, and Stripe failures are retried until sent', async () => {
    const { hostId, host } = await proAccountWithHost();
    const agent = entitlementAgent(billing.relay.url, hostId, host);
    try {
      await waitFor('agent online', () => agent.socket.isWelcomed);
      billing.standIn.failMeterEvents(3);
      const records = usageRecords(host, 4);
      expect(agent.socket.reportUsage('batch-1', records)).toBe(true);
      const ack = await waitFor('usage.ack', () => agent.acks.find((a) => a.batch_id === 'batch-1'));
      expect(ack.acked).toEqual(keysOf(records));
      // Three 500s from Stripe: those minutes wait (2 s backoff) and are sent on a later round.
      await waitFor('every minute at Stripe despite the failures', () => metered(keysOf(records)).length === 4, 20_000);
    } finally {
      agent.socket.dispose();
    }
  });

  it('trial minutes count against the trial and are never sent to Stripe, minutes after upgrading are', async () => {
    const owner = await signup(client);
    const { host, hostId } = await enroll(client, owner);
    const trialMinutes = usageRecords(host, 3);
    await client.call('usage.report', { host_id: hostId, records: trialMinutes });
    const status = await client.call('billing.status', {}, { accessToken: owner.session.access_token });
    expect(status).toMatchObject({ plan: 'trial', minutes: { used: 3, included: 300, overage: 0 } });
    await upgrade(client, owner, billing.standIn);
    billing.clock.advance(TEST_MINUTE_MS); // the next minute starts after the subscription did
    const proMinute = usageRecords(host, 1, { startedAt: billing.clock.now() });
    await client.call('usage.report', { host_id: hostId, records: proMinute });
    // The outbox sends in arrival order: once the later minute is at Stripe, the trial's would be too.
    await waitFor('the Pro minute at Stripe', () => metered(keysOf(proMinute)).length === 1);
    expect(metered(keysOf(trialMinutes))).toEqual([]);
    billing.clock.offset = 0;
  });
});
