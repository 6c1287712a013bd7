import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  RelayClient,
  signUsageRecord,
  usageRecordKey,
  type Entitlement,
  type RelayToAgent,
  type UsageRecord,
} from '@hangar/shared';
// The stand-in is plain JavaScript so the benchmark (node, no TypeScript) runs the same one.
import {
  HANGAR_METER_EVENT,
  HANGAR_PRICES,
  hangarCatalogue,
  relayBillingFlags,
  startStripeStandIn,
} from '../../../test/fixtures/stripe-stand-in/stand-in.mjs';
import type { BillingOptions } from '../../src/billing/billing.js';
import type { StripeSettings } from '../../src/billing/stripe-api.js';
import {
  TestClock,
  agentSocket,
  startTestRelay,
  tempDir,
  useRelay,
  waitFor,
  type SignedIn,
  type StorageKind,
  type TestKey,
  type TestRelay,
} from './relay-fixture.js';

export type StripeStandIn = Awaited<ReturnType<typeof startStripeStandIn>>;

/** A billed minute in these tests: an attempt that started now has its minutes within seconds. */
export const TEST_MINUTE_MS = 1_000;

export const PRICES = HANGAR_PRICES;
export const METER_EVENT = HANGAR_METER_EVENT;

/** Stripe settings for a relay pointed at `standIn`, and the secrets the stand-in checks. */
export function stripeSettings(standIn: { url: string }, keys = testKeys()): StripeSettings {
  const url = new URL(standIn.url);
  return {
    secretKey: keys.secretKey,
    webhookSecret: keys.webhookSecret,
    prices: { ...PRICES },
    meterEventName: METER_EVENT,
    api: { protocol: 'http', host: url.hostname, port: Number(url.port) },
  };
}

export function testKeys() {
  return {
    secretKey: `sk_test_${randomBytes(16).toString('hex')}`,
    webhookSecret: `whsec_${randomBytes(16).toString('hex')}`,
  };
}

export async function startStandIn(keys = testKeys(), now?: () => number): Promise<StripeStandIn> {
  return startStripeStandIn({ ...keys, ...hangarCatalogue(), ...(now ? { now } : {}) });
}

export interface BillingRelay extends AsyncDisposable {
  relay: TestRelay;
  standIn: StripeStandIn;
  clock: TestClock;
  stop(): Promise<void>;
}

/** A relay with billing on, its Stripe stand-in (webhooks pointed back at the relay) and one clock for both. */
export async function startBillingRelay(
  storage: Partial<import('../../src/index.js').RelayOptions>,
  billing: Partial<BillingOptions> = {},
): Promise<BillingRelay> {
  const clock = new TestClock();
  const keys = testKeys();
  const standIn = await startStandIn(keys, clock.now);
  const relay = await startTestRelay({
    ...storage,
    now: clock.now,
    billing: {
      stripe: stripeSettings(standIn, keys),
      minuteMs: TEST_MINUTE_MS,
      outbox: { intervalMs: 200 },
      ...billing,
    },
  });
  standIn.setWebhookUrl(`${relay.url}/v1/stripe/webhook`);
  const stop = async () => {
    await relay.stop();
    await standIn.close();
  };
  return { relay, standIn, clock, stop, [Symbol.asyncDispose]: stop };
}

/** The owner buys `plan` at Checkout and the stand-in delivers Stripe's events for it. */
export async function upgrade(
  client: RelayClient,
  owner: SignedIn,
  standIn: StripeStandIn,
  plan: 'pro' | 'team' = 'pro',
) {
  const { url } = await client.call('billing.checkout', { plan }, { accessToken: owner.session.access_token });
  const done = await standIn.completeCheckout(url);
  for (const delivery of standIn.deliveries.slice(-done.events.length)) {
    if (delivery.status !== 200) throw new Error(`webhook answered ${delivery.status}: ${delivery.body}`);
  }
  return done;
}

/** Signed usage records for `minutes` started minutes of one attempt on `host`, started now unless said. */
export function usageRecords(
  host: TestKey,
  minutes: number,
  f: { attemptId?: string; startedAt?: number; from?: number } = {},
): UsageRecord[] {
  const attemptId = f.attemptId ?? `a-${randomBytes(4).toString('hex')}`;
  const startedAt = f.startedAt ?? Date.now();
  return Array.from({ length: minutes }, (_, i) =>
    signUsageRecord(host.signer, {
      attempt_id: attemptId,
      job_id: `j-${attemptId
        .replace(/[^a-z0-9]/g, '')
        .slice(0, 12)
        .padEnd(8, '0')}`,
      minute_index: (f.from ?? 0) + i,
      started_at: startedAt,
    }),
  );
}

export const keysOf = (records: UsageRecord[]) => records.map((record) => usageRecordKey(record));

/** An agent socket that keeps every entitlement the relay pushed and the key from its welcome. */
export function entitlementAgent(url: string, hostId: string, host: TestKey) {
  const socket = agentSocket(url, hostId, host);
  const entitlements: Entitlement[] = [];
  const acks: Extract<RelayToAgent, { type: 'usage.ack' }>[] = [];
  socket.onEntitlement((entitlement) => entitlements.push(entitlement));
  socket.onUsageAck((ack) => acks.push(ack));
  return {
    socket,
    entitlements,
    acks,
    latest: () => entitlements[entitlements.length - 1],
    async next(what: string, check: (entitlement: Entitlement) => boolean, timeoutMs = 10_000) {
      return waitFor(what, () => [...entitlements].reverse().find(check), timeoutMs);
    },
  };
}

/** Files holding the Stripe secrets, for a relay started as a process (`hangar-relay serve`). */
export function secretFiles(keys: { secretKey: string; webhookSecret: string }) {
  const dir = tempDir('stripe-keys');
  mkdirSync(dir, { recursive: true });
  const secretKeyFile = join(dir, 'stripe-secret-key');
  const webhookSecretFile = join(dir, 'stripe-webhook-secret');
  writeFileSync(secretKeyFile, keys.secretKey + '\n', { mode: 0o600 });
  writeFileSync(webhookSecretFile, keys.webhookSecret + '\n', { mode: 0o600 });
  return { dir, secretKeyFile, webhookSecretFile };
}

export function billingFlags(standIn: { url: string }, files: { secretKeyFile: string; webhookSecretFile: string }) {
  return relayBillingFlags(standIn.url, files);
}

/** useRelay with a billing relay: `started` gets it and its client. */
export function useBillingRelay(
  kind: StorageKind,
  started: (billing: BillingRelay, client: RelayClient) => unknown,
  billing: Partial<BillingOptions> = {},
) {
  return useRelay(
    kind,
    (storage) => startBillingRelay(storage, billing),
    (relay) => started(relay, relay.relay.client),
  );
}
