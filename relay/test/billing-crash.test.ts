import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '@hangar/shared';
import {
  billingFlags,
  keysOf,
  secretFiles,
  startStandIn,
  testKeys,
  upgrade,
  usageRecords,
} from './support/billing-fixture.js';
import { STORAGE_KINDS, enroll, signup, tempDir, testStorage, waitFor } from './support/relay-fixture.js';
import { startRelayProcess, type RelayProcess } from './support/relay-process.js';

describe.each(STORAGE_KINDS)('a relay killed while sending minutes to Stripe (%s)', (kind) => {
  const storage = testStorage(kind);

  it('kill -9 mid-send, then restart: Stripe has every minute, each once', async () => {
    const keys = testKeys();
    const standIn = await startStandIn(keys);
    const files = secretFiles(keys);
    const data = tempDir('billing-crash');
    const where =
      kind === 'sqlite' ? ['--data', data] : ['--database', await storage.cluster()!.createDatabase('billing_crash')];
    const args = (port: number) => [
      '--listen',
      `127.0.0.1:${port}`,
      ...where,
      '--password-hash-cost',
      '10',
      '--rate-limit-scale',
      '100',
      '--billing-minute-ms',
      '1000',
      ...billingFlags(standIn, files),
    ];
    let relay: RelayProcess = await startRelayProcess(args(0));
    try {
      const client = new RelayClient({ url: relay.url });
      standIn.setWebhookUrl(`${relay.url}/v1/stripe/webhook`);
      const owner = await signup(client);
      await upgrade(client, owner, standIn);
      const { host, hostId } = await enroll(client, owner);
      const records = usageRecords(host, 40);
      const wanted = keysOf(records);

      // Stripe accepts each event, then takes 3 s to answer: the relay cannot have recorded any as sent.
      standIn.setMeterDelay(3_000);
      expect((await client.call('usage.report', { host_id: hostId, records })).acked).toEqual(wanted);
      await waitFor('Stripe to have accepted some minutes', () => standIn.meterEvents.size >= 1);
      await relay.crash();
      const acceptedBeforeCrash = [...standIn.meterEvents.keys()];
      expect(acceptedBeforeCrash.length).toBeLessThan(wanted.length);

      standIn.setMeterDelay(0);
      relay = await startRelayProcess(args(relay.port));
      await waitFor(
        'every minute at Stripe after the restart',
        () => wanted.every((key) => standIn.meterEvents.has(key)),
        20_000,
      );
      expect(standIn.meterEvents.size).toBe(wanted.length);
      // The restarted relay did send again what had been accepted before the crash (its rows were
      // still pending), and Stripe counted those once: replayed by idempotency key or refused by identifier.
      const sends = standIn.requests.filter((r: { path: string }) => r.path === '/v1/billing/meter_events');
      const resent = acceptedBeforeCrash.filter(
        (key) => sends.filter((r: { params: { identifier: string } }) => r.params.identifier === key).length > 1,
      );
      expect(resent.length).toBeGreaterThan(0);
    } finally {
      await relay.stop();
      await standIn.close();
      rmSync(data, { recursive: true, force: true });
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});
