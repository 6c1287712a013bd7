import { describe, expect, it } from 'vitest';
import { RelayClient, type RelayResult } from '@hangar/shared';
import { useBillingRelay, upgrade, type BillingRelay } from './support/billing-fixture.js';
import { STORAGE_KINDS, login, signup, type SignedIn } from './support/relay-fixture.js';

const DAY = 24 * 60 * 60_000;

describe.each(STORAGE_KINDS)('plans and Stripe (%s)', (kind) => {
  let billing: BillingRelay;
  let client: RelayClient;
  useBillingRelay(kind, (relay, relayClient) => ([billing, client] = [relay, relayClient]));

  const status = (user: SignedIn) =>
    client.call('billing.status', {}, { accessToken: user.session.access_token }) as Promise<
      RelayResult<'billing.status'>
    >;

  it('a new account gets 7 days of Pro without a card, and after them no plan at all', async () => {
    const owner = await signup(client);
    const first = await status(owner);
    expect(first).toMatchObject({ billing: 'on', plan: 'trial', role: 'owner', refusing: null, next_invoice_at: null });
    expect(first.trial.days_left).toBe(7);
    expect(first.trial.ends_at - first.trial.started_at).toBe(7 * DAY);
    expect(first.minutes).toEqual({ used: 0, included: 300, overage: 0 });
    expect(first.minutes_per_day.length).toBeGreaterThanOrEqual(1);

    billing.clock.advance(6 * DAY + 12 * 60 * 60_000);
    const refreshed = {
      ...owner,
      session: {
        ...owner.session,
        ...(await client.call('auth.refresh', { refresh_token: owner.session.refresh_token })),
      },
    };
    expect(await status(refreshed)).toMatchObject({ plan: 'trial', trial: { days_left: 1 } });

    billing.clock.advance(DAY);
    const later = {
      ...refreshed,
      session: {
        ...refreshed.session,
        ...(await client.call('auth.refresh', { refresh_token: refreshed.session.refresh_token })),
      },
    };
    const ended = await status(later);
    expect(ended.plan).toBe('none');
    expect(ended.trial.days_left).toBe(0);
    expect(ended.refusing?.reason).toBe('trial_ended');
    expect(ended.refusing?.message).toMatch(/upgrade/);
    billing.clock.offset = 0;
  });

  it("upgrading: Checkout, then Stripe's webhooks, put the account on Pro with its next invoice date", async () => {
    const owner = await signup(client);
    const { url } = await client.call('billing.checkout', { plan: 'pro' }, { accessToken: owner.session.access_token });
    const session = billing.standIn.sessionOf(url);
    expect(session).toMatchObject({ mode: 'subscription', client_reference_id: owner.session.account.account_id });
    // The Checkout request carried the Pro price and the metered overage price (no quantity).
    const request = billing.standIn.requests.find((r: { path: string }) => r.path === '/v1/checkout/sessions');
    expect(request.params.line_items).toEqual([
      { price: 'price_pro_monthly', quantity: '1' },
      { price: 'price_pro_minutes' },
    ]);
    expect((await status(owner)).plan).toBe('trial'); // nothing changes until Stripe says it was paid

    const done = await billing.standIn.completeCheckout(url);
    expect(billing.standIn.deliveries.slice(-3).map((d: { status: number }) => d.status)).toEqual([200, 200, 200]);
    const pro = await status(owner);
    expect(pro).toMatchObject({ plan: 'pro', payment_failed: false, refusing: null });
    expect(pro.subscription).toEqual({ plan: 'pro', status: 'active', cancel_at_period_end: false });
    expect(pro.next_invoice_at).toBe(done.subscription.items.data[0].current_period_end * 1000);
    expect(pro.minutes).toEqual({ used: 0, included: 300, overage: 0 });

    // Already subscribed: a second Checkout is refused, the portal is where plans change.
    await expect(
      client.call('billing.checkout', { plan: 'team' }, { accessToken: owner.session.access_token }),
    ).rejects.toMatchObject({ code: 'E_EXISTS' });
    const portal = await client.call('billing.portal', {}, { accessToken: owner.session.access_token });
    expect(portal.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/p\/session\//);
  });

  it('a webhook with a bad signature is refused and changes nothing', async () => {
    const owner = await signup(client);
    const { url } = await client.call('billing.checkout', { plan: 'pro' }, { accessToken: owner.session.access_token });
    const { events } = await billing.standIn.completeCheckout(url, { deliverEvents: false });
    const forged = await billing.standIn.deliver(events[0], { secret: 'whsec_not_the_endpoint_secret' });
    expect(forged.status).toBe(401);
    expect(JSON.parse(forged.body).error.code).toBe('E_AUTH_BAD_SIGNATURE');
    const stale = await billing.standIn.deliver(events[0], { timestamp: Math.floor(billing.clock.now() / 1000) - 600 });
    expect(stale.status).toBe(401);
    const unsigned = await billing.standIn.deliver(events[0], { header: '' });
    expect(unsigned.status).toBe(401);
    expect((await status(owner)).plan).toBe('trial');
    // The same event, properly signed, is then applied.
    expect((await billing.standIn.deliver(events[0])).status).toBe(200);
    expect((await status(owner)).plan).toBe('pro');
  });

  it('an event delivered twice is applied once', async () => {
    const owner = await signup(client);
    const { events } = await upgrade(client, owner, billing.standIn);
    const again = await billing.standIn.deliver(events[0]);
    expect(again.status).toBe(200);
    expect(JSON.parse(again.body)).toEqual({ received: true, outcome: 'duplicate' });
    const audit = await client.call('audit.list', {}, { accessToken: owner.session.access_token });
    const applied = audit.entries.filter((entry) => entry.action === 'billing.subscription');
    expect(applied.map((entry) => entry.detail['event']).sort()).toEqual(
      ['checkout.session.completed', 'customer.subscription.created', 'invoice.paid'].sort(),
    );
  });

  it('events that arrive out of order still end in the state Stripe holds', async () => {
    // Cancelled right after paying; the deletion arrives first, the creation events after it.
    const owner = await signup(client);
    const { url } = await client.call('billing.checkout', { plan: 'pro' }, { accessToken: owner.session.access_token });
    const { subscription, events } = await billing.standIn.completeCheckout(url, { deliverEvents: false });
    const deleted = billing.standIn.updateSubscription(
      subscription.id,
      { status: 'canceled', ended_at: Math.floor(billing.clock.now() / 1000) },
      'customer.subscription.deleted',
    );
    expect((await billing.standIn.deliver(deleted)).status).toBe(200);
    for (const event of [...events].reverse()) expect((await billing.standIn.deliver(event)).status).toBe(200);
    const after = await status(owner);
    expect(after.plan).toBe('trial'); // still within the trial; the subscription counts for nothing
    expect(after.subscription).toMatchObject({ status: 'canceled' });

    // A failed renewal (past_due) followed by the stale "created" event: still past_due.
    const other = await signup(client);
    const bought = await upgrade(client, other, billing.standIn);
    const failed = billing.standIn.failPayment(bought.subscription.id);
    expect((await billing.standIn.deliver(failed)).status).toBe(200);
    const stale = billing.standIn.eventOf('customer.subscription.updated', bought.subscription); // status active, as it was
    expect((await billing.standIn.deliver(stale)).status).toBe(200);
    expect(await status(other)).toMatchObject({
      plan: 'pro',
      payment_failed: true,
      subscription: { status: 'past_due' },
    });
  });

  it("only the owner's approved device may buy or manage billing; a pending device may not even read the status", async () => {
    const owner = await signup(client);
    const phone = await login(client, owner.email); // pending until approved
    await expect(
      client.call('billing.checkout', { plan: 'pro' }, { accessToken: phone.session.access_token }),
    ).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
    await expect(client.call('billing.portal', {}, { accessToken: phone.session.access_token })).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
    });
    await expect(status(phone)).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
    expect((await status(owner)).plan).toBe('trial');
  });
});
