import { describe, expect, it } from 'vitest';
import {
  ENTITLEMENT_VALID_MS,
  decideMeteredJob,
  verifyEntitlement,
  type Entitlement,
  type RelayClient,
} from '@hangar/shared';
import {
  entitlementAgent,
  useBillingRelay,
  upgrade,
  usageRecords,
  type BillingRelay,
} from './support/billing-fixture.js';
import {
  STORAGE_KINDS,
  enroll,
  enrollParams,
  newHost,
  signup,
  waitFor,
  ownerWithHost,
  describeEachStorage,
} from './support/relay-fixture.js';

describe.each(STORAGE_KINDS)('entitlements (%s)', (kind) => {
  let billing: BillingRelay;
  let client: RelayClient;
  useBillingRelay(kind, (relay, relayClient) => ([billing, client] = [relay, relayClient]), {
    entitlementRenewMs: 1_000,
  });

  it('a host gets a signed entitlement when it connects, verifiable offline with the key from its enrollment', async () => {
    const owner = await signup(client);
    const host = newHost();
    const token = await client.call(
      'hosts.enroll_token',
      { name: host.name },
      { accessToken: owner.session.access_token },
    );
    const enrolled = await client.call('hosts.enroll', enrollParams(token.token_id, token.relay_secret, host));
    const hostId = enrolled.host_id;
    const agent = entitlementAgent(billing.relay.url, hostId, host);
    try {
      const first = await waitFor('an entitlement', () => agent.latest());
      const relayKey = enrolled.entitlement_key; // what the host keeps from its enrollment
      expect(agent.socket.entitlementKey).toBe(relayKey);
      expect(verifyEntitlement(relayKey, first)).toBe(true);
      expect(first).toMatchObject({
        account_id: owner.session.account.account_id,
        host_id: hostId,
        plan: 'trial',
        metered: true,
        minutes_left: 300,
        reason: null,
        minute_ms: 1_000,
      });
      expect(first.valid_until - first.issued_at).toBe(ENTITLEMENT_VALID_MS);
      expect(decideMeteredJob(first, { relayKey, hostId, now: Date.now() })).toEqual({
        allowed: true,
        metered: true,
        minutes_left: 300,
      });
      // Any change to what was signed, or another host's id, fails verification.
      const tampered: Entitlement = { ...first, minutes_left: 100_000 };
      expect(verifyEntitlement(relayKey, tampered)).toBe(false);
      expect(decideMeteredJob(tampered, { relayKey, hostId, now: Date.now() })).toMatchObject({ allowed: false });
      expect(decideMeteredJob(first, { relayKey, hostId: `host_${'2'.repeat(32)}`, now: Date.now() })).toMatchObject({
        allowed: false,
      });
      // Still honoured while the relay is away, until it expires.
      expect(decideMeteredJob(first, { relayKey, hostId, now: first.valid_until - 1 })).toMatchObject({
        allowed: true,
      });
      const expired = decideMeteredJob(first, { relayKey, hostId, now: first.valid_until });
      expect(expired).toMatchObject({ allowed: false, error: { code: 'E_PLAN_LIMIT' } });
      expect(!expired.allowed && expired.error.message).toMatch(/expired .* reconnect this host/);

      // Renewed while online (every second here; hourly by default).
      const renewed = await agent.next('a renewed entitlement', (e) => e.issued_at > first.issued_at);
      expect(verifyEntitlement(relayKey, renewed)).toBe(true);
    } finally {
      agent.socket.dispose();
    }
  });

  it('a trial over its 300 minutes gets minutes_left 0 at once, and metered jobs are refused with what to do', async () => {
    const owner = await signup(client);
    const { hostId, host } = await enroll(client, owner);
    const agent = entitlementAgent(billing.relay.url, hostId, host);
    try {
      await waitFor('first entitlement', () => agent.latest());
      const records = usageRecords(host, 300);
      for (let at = 0; at < records.length; at += 150) {
        await client.call('usage.report', { host_id: hostId, records: records.slice(at, at + 150) });
      }
      const spent = await agent.next('minutes_left 0', (e) => e.minutes_left === 0);
      expect(spent).toMatchObject({ plan: 'trial', reason: 'minutes_used_up' });
      const relayKey = billing.relay.relay.context.billing.entitlementKey;
      const decision = decideMeteredJob(spent, { relayKey, hostId, now: Date.now() });
      expect(decision).toMatchObject({ allowed: false, error: { code: 'E_PLAN_LIMIT' } });
      expect(!decision.allowed && decision.error.message).toMatch(/upgrade/);
      const status = await client.call('billing.status', {}, { accessToken: owner.session.access_token });
      expect(status.refusing?.reason).toBe('minutes_used_up');

      // Upgrading lifts the cap: the webhook makes the relay push a Pro entitlement (overage billed).
      await upgrade(client, owner, billing.standIn);
      const pro = await agent.next('a Pro entitlement', (e) => e.plan === 'pro');
      expect(pro).toMatchObject({ minutes_left: null, reason: null, metered: true });
      expect(decideMeteredJob(pro, { relayKey, hostId, now: Date.now() })).toMatchObject({ allowed: true });
    } finally {
      agent.socket.dispose();
    }
  });

  it('a trial that ended leaves hosts an entitlement that refuses metered jobs', async () => {
    const owner = await signup(client);
    const { hostId, host } = await enroll(client, owner);
    billing.clock.advance(8 * 24 * 60 * 60_000);
    const agent = entitlementAgent(billing.relay.url, hostId, host);
    try {
      const ended = await waitFor('an entitlement', () => agent.latest());
      expect(ended).toMatchObject({ plan: 'none', minutes_left: 0, reason: 'trial_ended' });
      const relayKey = billing.relay.relay.context.billing.entitlementKey;
      const decision = decideMeteredJob(ended, { relayKey, hostId, now: billing.clock.now() });
      expect(!decision.allowed && decision.error.message).toMatch(/trial has ended/);
    } finally {
      agent.socket.dispose();
      billing.clock.offset = 0;
    }
  });
});

describeEachStorage('billing off', (relay) => {
  it('without Stripe settings nothing is metered: entitlements say metered false, nothing is for sale', async () => {
    const { owner, hostId, host } = await ownerWithHost(relay.client);
    const agent = entitlementAgent(relay.url, hostId, host);
    try {
      const entitlement = await waitFor('an entitlement', () => agent.latest());
      expect(entitlement).toMatchObject({ plan: 'unmetered', metered: false, minutes_left: null, reason: null });
      const relayKey = relay.relay.context.billing.entitlementKey;
      expect(decideMeteredJob(entitlement, { relayKey, hostId, now: Date.now() })).toEqual({
        allowed: true,
        metered: false,
        minutes_left: null,
      });
      const status = await relay.client.call('billing.status', {}, { accessToken: owner.session.access_token });
      expect(status).toMatchObject({ billing: 'off', plan: 'unmetered', refusing: null, minutes: { included: null } });
      await expect(
        relay.client.call('billing.checkout', { plan: 'pro' }, { accessToken: owner.session.access_token }),
      ).rejects.toMatchObject({ code: 'E_BILLING_OFF' });
      const webhook = await fetch(`${relay.url}/v1/stripe/webhook`, { method: 'POST', body: '{}' });
      expect(webhook.status).toBe(404);
    } finally {
      agent.socket.dispose();
    }
  });
});
