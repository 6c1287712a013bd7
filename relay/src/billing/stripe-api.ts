import Stripe from 'stripe';
import { HangarError, type PaidPlanId } from '@hangar/shared';

/**
 * The relay's only door to Stripe, through the official SDK: customers, Checkout Sessions for
 * subscriptions, customer-portal sessions, subscriptions (retrieved, never taken from an event),
 * Billing Meter events and webhook signatures. `api` points the SDK elsewhere (the tests' stand-in
 * of Stripe's API, which is all it was ever run against here).
 */
export interface StripeSettings {
  secretKey: string;
  webhookSecret: string;
  prices: {
    pro: string;
    team: string;
    /** A metered price on the meter for Pro's minutes past the included 300; without it they are refused. */
    proOverage?: string;
  };
  meterEventName: string;
  /** Where the API is (default https://api.stripe.com:443). */
  api?: { protocol: 'http' | 'https'; host: string; port: number };
}

/** What the relay keeps of a subscription. Times in ms. */
export interface SubscriptionSnapshot {
  id: string;
  customer: string;
  /** metadata.account_id, set at Checkout; the customer's account is the fallback. */
  accountId: string | undefined;
  plan: PaidPlanId | undefined;
  status: string;
  cancelAtPeriodEnd: boolean;
  periodStart: number;
  periodEnd: number;
  created: number;
  /** When it was read from Stripe: of two reads, the later one is the fresher state. */
  fetchedAt: number;
}

export type StripeEvent = Stripe.Event;

/** How long a webhook's signed timestamp may be old (Stripe's SDK default, 5 minutes). */
const WEBHOOK_TOLERANCE_S = 300;

export class StripeApi {
  private readonly stripe: Stripe;

  constructor(
    readonly settings: StripeSettings,
    private readonly now: () => number,
  ) {
    this.stripe = new Stripe(settings.secretKey, {
      ...(settings.api ? { protocol: settings.api.protocol, host: settings.api.host, port: settings.api.port } : {}),
      // Retries of the calls users wait on; the meter outbox retries on its own schedule.
      maxNetworkRetries: 1,
      timeout: 20_000,
      telemetry: false,
      appInfo: { name: 'hangar-relay' },
    });
  }

  /** One customer per account: the idempotency key makes two racing first checkouts make one. */
  async createCustomer(accountId: string, email: string): Promise<string> {
    const customer = await this.call('creating the Stripe customer', () =>
      this.stripe.customers.create(
        { email, metadata: { account_id: accountId } },
        { idempotencyKey: `hangar-customer-${accountId}` },
      ),
    );
    return customer.id;
  }

  async checkoutUrl(f: {
    customer: string;
    accountId: string;
    plan: PaidPlanId;
    successUrl: string;
    cancelUrl: string;
  }): Promise<string> {
    const prices = this.settings.prices;
    const lineItems: Stripe.Checkout.SessionCreateParams.LineItem[] =
      f.plan === 'team'
        ? [{ price: prices.team, quantity: 1 }]
        : [
            { price: prices.pro, quantity: 1 },
            // A metered price takes no quantity: Stripe bills what the meter counted.
            ...(prices.proOverage !== undefined ? [{ price: prices.proOverage }] : []),
          ];
    const session = await this.call('starting Stripe Checkout', () =>
      this.stripe.checkout.sessions.create({
        mode: 'subscription',
        customer: f.customer,
        client_reference_id: f.accountId,
        line_items: lineItems,
        success_url: f.successUrl,
        cancel_url: f.cancelUrl,
        metadata: { account_id: f.accountId, plan: f.plan },
        subscription_data: { metadata: { account_id: f.accountId, plan: f.plan } },
      }),
    );
    if (session.url === null) throw new HangarError('E_UNAVAILABLE', 'Stripe Checkout answered without a URL');
    return session.url;
  }

  async portalUrl(customer: string, returnUrl: string): Promise<string> {
    const session = await this.call('opening the Stripe customer portal', () =>
      this.stripe.billingPortal.sessions.create({ customer, return_url: returnUrl }),
    );
    return session.url;
  }

  async subscription(id: string): Promise<SubscriptionSnapshot> {
    const sub = await this.call('reading the subscription from Stripe', () => this.stripe.subscriptions.retrieve(id));
    const prices = sub.items.data.map((item) => item.price.id);
    const plan: PaidPlanId | undefined = prices.includes(this.settings.prices.team)
      ? 'team'
      : prices.includes(this.settings.prices.pro)
        ? 'pro'
        : undefined;
    // Since API version 2025-03-31 the period is per item; the subscription's is the widest.
    const starts = sub.items.data.map((item) => item.current_period_start);
    const ends = sub.items.data.map((item) => item.current_period_end);
    return {
      id: sub.id,
      customer: typeof sub.customer === 'string' ? sub.customer : sub.customer.id,
      accountId: sub.metadata['account_id'],
      plan,
      status: sub.status,
      cancelAtPeriodEnd: sub.cancel_at_period_end,
      periodStart: (starts.length > 0 ? Math.min(...starts) : sub.created) * 1000,
      periodEnd: (ends.length > 0 ? Math.max(...ends) : sub.created) * 1000,
      created: sub.created * 1000,
      fetchedAt: this.now(),
    };
  }

  /**
   * One Billing Meter event: value 1 (one minute). `identifier` is the usage key, so Stripe
   * counts a resend once; the same key as idempotency key makes a resend after a lost answer
   * get the first answer back. No SDK retries: the outbox retries on its own schedule.
   */
  async sendMeterEvent(f: { identifier: string; customer: string; timestamp: number }): Promise<void> {
    await this.stripe.billing.meterEvents.create(
      {
        event_name: this.settings.meterEventName,
        identifier: f.identifier,
        timestamp: Math.floor(f.timestamp / 1000),
        payload: { stripe_customer_id: f.customer, value: '1' },
      },
      { idempotencyKey: f.identifier, maxNetworkRetries: 0 },
    );
  }

  /** Checks the Stripe-Signature header (HMAC-SHA256 with the endpoint secret, 5 minutes' tolerance). */
  verifyWebhook(rawBody: Buffer, signatureHeader: string | undefined): StripeEvent {
    try {
      return this.stripe.webhooks.constructEvent(
        rawBody,
        signatureHeader ?? '',
        this.settings.webhookSecret,
        WEBHOOK_TOLERANCE_S,
        undefined,
        this.now(),
      );
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
        throw new HangarError(
          'E_AUTH_BAD_SIGNATURE',
          `the Stripe-Signature does not verify (${error.message}); check --stripe-webhook-secret-file`,
        );
      }
      throw error;
    }
  }

  /** Stripe's own errors as HangarErrors that say what failed; 4xx stays a refusal, the rest is unavailability. */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw stripeFailure(what, error);
    }
  }
}

export function stripeFailure(what: string, error: unknown): HangarError {
  if (error instanceof Stripe.errors.StripeError) {
    const status = error.statusCode ?? 0;
    const code =
      status === 404
        ? 'E_NOT_FOUND'
        : status >= 400 && status < 500 && status !== 429
          ? 'E_BAD_REQUEST'
          : 'E_UNAVAILABLE';
    return new HangarError(code, `${what} failed: Stripe answered ${status || 'nothing'} (${error.message})`, {
      stripe_code: error.code ?? null,
      stripe_param: error.param ?? null,
      status,
    });
  }
  return new HangarError('E_UNAVAILABLE', `${what} failed: ${error instanceof Error ? error.message : String(error)}`);
}
