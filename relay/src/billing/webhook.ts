import type { FastifyInstance } from 'fastify';
import { HangarError, toHangarError } from '@hangar/shared';
import type { RelayContext } from '../context.js';
import { sendError } from '../api/routes.js';
import type { StripeApi, StripeEvent, SubscriptionSnapshot } from './stripe-api.js';

/** The events the relay acts on; any other is acknowledged and ignored. */
export const HANDLED_EVENTS = [
  'checkout.session.completed',
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'invoice.paid',
  'invoice.payment_failed',
];

/**
 * `POST /v1/stripe/webhook`: Stripe's events, verified with the SDK's signature check on the
 * raw body. Each event is applied once (its id is recorded in the same transaction that applies
 * it) and in any order: every event only names a subscription, whose state is then fetched from
 * Stripe, so a late `updated` after a `deleted` cannot resurrect anything.
 */
export function registerStripeWebhook(app: FastifyInstance, ctx: RelayContext, stripe: StripeApi): void {
  void app.register(async (scope) => {
    // The signature covers the exact bytes Stripe sent: keep them, do not parse and re-serialise.
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    scope.post('/v1/stripe/webhook', async (request, reply) => {
      try {
        const raw = request.body;
        if (!Buffer.isBuffer(raw)) throw new HangarError('E_BAD_REQUEST', 'expected a JSON body from Stripe');
        const header = request.headers['stripe-signature'];
        const event = stripe.verifyWebhook(raw, typeof header === 'string' ? header : undefined);
        const outcome = await applyEvent(ctx, stripe, event);
        request.log.info({ stripe_event: event.id, type: event.type, outcome }, 'stripe webhook');
        return reply.code(200).send({ received: true, outcome });
      } catch (error) {
        const hangarError = toHangarError(error);
        request.log.warn({ code: hangarError.code, err: hangarError.message }, 'stripe webhook refused');
        // Anything but a bad request or signature is answered 5xx, so Stripe retries it later.
        return sendError(ctx, reply, hangarError);
      }
    });
  });
}

type Outcome = 'applied' | 'duplicate' | 'ignored' | 'unknown_account';

export async function applyEvent(ctx: RelayContext, stripe: StripeApi, event: StripeEvent): Promise<Outcome> {
  const seen = await ctx.db.selectFrom('stripe_events').select('id').where('id', '=', event.id).executeTakeFirst();
  if (seen !== undefined) return 'duplicate';
  const subscriptionId = HANDLED_EVENTS.includes(event.type) ? subscriptionOf(event) : undefined;
  if (subscriptionId === undefined) {
    await recordEvent(ctx, event, null);
    return 'ignored';
  }
  const snapshot = await stripe.subscription(subscriptionId);
  const accountId = await accountOf(ctx, snapshot);
  if (accountId === undefined) {
    ctx.logger.warn({ subscription: snapshot.id, customer: snapshot.customer }, 'a subscription of no account here');
    await recordEvent(ctx, event, null);
    return 'unknown_account';
  }
  const applied = await ctx.db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('stripe_events')
      .values({ id: event.id, type: event.type, account_id: accountId, applied_at: ctx.now() })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) return false; // the same event, applied concurrently
    const row = {
      id: snapshot.id,
      account_id: accountId,
      stripe_customer_id: snapshot.customer,
      plan: snapshot.plan ?? 'unknown',
      status: snapshot.status,
      cancel_at_period_end: snapshot.cancelAtPeriodEnd ? 1 : 0,
      period_start: snapshot.periodStart,
      period_end: snapshot.periodEnd,
      created_at: snapshot.created,
      fetched_at: snapshot.fetchedAt,
    };
    // Of two fetches applied out of order, the later one (fresher state) wins.
    await trx
      .insertInto('subscriptions')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet({
            plan: row.plan,
            status: row.status,
            cancel_at_period_end: row.cancel_at_period_end,
            period_start: row.period_start,
            period_end: row.period_end,
            fetched_at: row.fetched_at,
          })
          .where('subscriptions.fetched_at', '<=', row.fetched_at),
      )
      .execute();
    return true;
  });
  if (!applied) return 'duplicate';
  await ctx.audit.record({ accountId, actor: 'stripe', ip: null, requestId: event.id }, 'billing.subscription', {
    event: event.type,
    subscription: snapshot.id,
    plan: snapshot.plan ?? null,
    status: snapshot.status,
  });
  await ctx.bus.publish({ t: 'billing.changed', account_id: accountId });
  return 'applied';
}

function subscriptionOf(event: StripeEvent): string | undefined {
  const object = event.data.object as unknown as Record<string, unknown>;
  const idOf = (value: unknown): string | undefined =>
    typeof value === 'string'
      ? value
      : typeof (value as { id?: unknown } | null)?.id === 'string'
        ? (value as { id: string }).id
        : undefined;
  switch (event.type) {
    case 'checkout.session.completed':
      return object['mode'] === 'subscription' ? idOf(object['subscription']) : undefined;
    case 'customer.subscription.created':
    case 'customer.subscription.updated':
    case 'customer.subscription.deleted':
      return idOf(object['id']);
    case 'invoice.paid':
    case 'invoice.payment_failed': {
      // Since API version 2025-03-31 an invoice names its subscription under parent.subscription_details.
      const parent = object['parent'] as { subscription_details?: { subscription?: unknown } | null } | null;
      return idOf(parent?.subscription_details?.subscription);
    }
    default:
      return undefined;
  }
}

/** The customer the relay made for an account, else the account named in the subscription's metadata. */
async function accountOf(ctx: RelayContext, snapshot: SubscriptionSnapshot): Promise<string | undefined> {
  const byCustomer = await ctx.db
    .selectFrom('billing_customers')
    .select('account_id')
    .where('stripe_customer_id', '=', snapshot.customer)
    .executeTakeFirst();
  if (byCustomer !== undefined) return byCustomer.account_id;
  if (snapshot.accountId === undefined) return undefined;
  const account = await ctx.db
    .selectFrom('accounts')
    .select('id')
    .where('id', '=', snapshot.accountId)
    .executeTakeFirst();
  return account?.id;
}

async function recordEvent(ctx: RelayContext, event: StripeEvent, accountId: string | null): Promise<void> {
  await ctx.db
    .insertInto('stripe_events')
    .values({ id: event.id, type: event.type, account_id: accountId, applied_at: ctx.now() })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}
