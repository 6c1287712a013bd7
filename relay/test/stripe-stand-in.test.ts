import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METER_EVENT, PRICES, startStandIn, testKeys, type StripeStandIn } from './support/billing-fixture.js';

/**
 * The Stripe stand-in holds to what Stripe documents, or the billing tests would prove nothing:
 * driven here through the official SDK (and raw HTTP where the SDK would not send it wrong).
 */
describe('the Stripe stand-in', () => {
  const keys = testKeys();
  let standIn: StripeStandIn;
  let stripe: Stripe;
  beforeAll(async () => {
    standIn = await startStandIn(keys);
    const url = new URL(standIn.url);
    stripe = new Stripe(keys.secretKey, {
      protocol: 'http',
      host: url.hostname,
      port: Number(url.port),
      maxNetworkRetries: 0,
    });
  });
  afterAll(() => standIn.close());

  it('refuses a wrong key and a body that is not form-encoded', async () => {
    const wrong = new Stripe('sk_test_wrong', {
      protocol: 'http',
      host: '127.0.0.1',
      port: Number(new URL(standIn.url).port),
    });
    await expect(wrong.customers.create({ email: 'a@example.com' })).rejects.toMatchObject({ statusCode: 401 });
    const json = await fetch(`${standIn.url}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.secretKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'a@example.com' }),
    });
    expect(json.status).toBe(400);
  });

  it('accepts a meter event identifier once: a retry with its idempotency key gets the first answer, another send is refused', async () => {
    const customer = await stripe.customers.create({ email: 'm@example.com' });
    const event = {
      event_name: METER_EVENT,
      identifier: 'u1_same',
      payload: { stripe_customer_id: customer.id, value: '1' },
    };
    const first = await stripe.billing.meterEvents.create(event, { idempotencyKey: 'u1_same' });
    const replay = await stripe.billing.meterEvents.create(event, { idempotencyKey: 'u1_same' });
    expect(replay).toEqual(first);
    expect(replay.lastResponse.headers['idempotent-replayed']).toBe('true');
    await expect(stripe.billing.meterEvents.create(event, { idempotencyKey: 'another-key' })).rejects.toMatchObject({
      statusCode: 400,
      param: 'identifier',
    });
    await expect(
      stripe.billing.meterEvents.create({ ...event, identifier: 'u1_other' }, { idempotencyKey: 'u1_same' }),
    ).rejects.toMatchObject({ statusCode: 400, type: 'StripeIdempotencyError' });
    expect([...standIn.meterEvents.keys()].filter((key: string) => key === 'u1_same')).toHaveLength(1);
    const old = Math.floor(Date.now() / 1000) - 36 * 24 * 60 * 60;
    await expect(
      stripe.billing.meterEvents.create({ ...event, identifier: 'u1_old', timestamp: old }),
    ).rejects.toMatchObject({ statusCode: 400, param: 'timestamp' });
  });

  it('checks Checkout line items as Stripe does and signs webhooks that the SDK verifies', async () => {
    const customer = await stripe.customers.create({ email: 'c@example.com' });
    const base = { mode: 'subscription' as const, customer: customer.id, success_url: 'http://x/ok' };
    await expect(
      stripe.checkout.sessions.create({ ...base, line_items: [{ price: PRICES.proOverage, quantity: 1 }] }),
    ).rejects.toMatchObject({ statusCode: 400 });
    await expect(
      stripe.checkout.sessions.create({ ...base, line_items: [{ price: 'price_nope', quantity: 1 }] }),
    ).rejects.toMatchObject({
      statusCode: 400,
      code: 'resource_missing',
    });
    const session = await stripe.checkout.sessions.create({
      ...base,
      line_items: [{ price: PRICES.pro, quantity: 1 }],
    });
    const { subscription, events } = await standIn.completeCheckout(session.url!, { deliverEvents: false });
    const fetched = await stripe.subscriptions.retrieve(subscription.id);
    expect(fetched.items.data[0]!.price.id).toBe(PRICES.pro);
    const payload = JSON.stringify(events[0]);
    const event = stripe.webhooks.constructEvent(payload, standIn.signature(payload), keys.webhookSecret);
    expect(event.type).toBe('customer.subscription.created');
    expect(() =>
      stripe.webhooks.constructEvent(payload, standIn.signature(payload, { secret: 'whsec_x' }), keys.webhookSecret),
    ).toThrow();
  });
});
