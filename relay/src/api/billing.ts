import { HangarError } from '@hangar/shared';
import { LIVE_STATUSES } from '../billing/account-state.js';
import type { StripeApi } from '../billing/stripe-api.js';
import { reportUsage } from '../billing/usage.js';
import type { DeviceRow, RelayContext } from '../context.js';
import { auditContext, signedIn, type Call, type Handlers } from './call.js';

/**
 * Billing procedures (PROTOCOL.md "Billing"). Reading the status is for every trusted device of
 * the account (the owner's and members'); buying and managing are for the owner's only;
 * usage.report is a host's, authenticated by the host signature on every record.
 */
export const billingHandlers: Pick<
  Handlers,
  'billing.status' | 'billing.checkout' | 'billing.portal' | 'usage.report'
> = {
  async 'billing.status'(ctx, _params, call) {
    const device = signedIn(call);
    return ctx.billing.status(device.account_id, device.member_email === null ? 'owner' : 'member');
  },

  async 'billing.checkout'(ctx, params, call) {
    const device = owner(call, 'buying a plan');
    const stripe = stripeOf(ctx);
    const live = await ctx.db
      .selectFrom('subscriptions')
      .select(['plan', 'status'])
      .where('account_id', '=', device.account_id)
      .where('status', 'in', LIVE_STATUSES)
      .executeTakeFirst();
    if (live !== undefined) {
      throw new HangarError(
        'E_EXISTS',
        `this account already has a ${live.plan} subscription (${live.status}); change plan or card in the customer portal: hangar account manage`,
      );
    }
    const customer = await customerOf(ctx, stripe, device.account_id);
    const url = await stripe.checkoutUrl({
      customer,
      accountId: device.account_id,
      plan: params.plan,
      successUrl: `${call.origin}/v1/billing/return?checkout=done`,
      cancelUrl: `${call.origin}/v1/billing/return?checkout=cancelled`,
    });
    await ctx.audit.record(auditContext(call, device.account_id), 'billing.checkout', { plan: params.plan });
    return { url };
  },

  async 'billing.portal'(ctx, _params, call) {
    const device = owner(call, 'managing billing');
    const stripe = stripeOf(ctx);
    const customer = await customerOf(ctx, stripe, device.account_id);
    const url = await stripe.portalUrl(customer, `${call.origin}/v1/billing/return?portal=done`);
    await ctx.audit.record(auditContext(call, device.account_id), 'billing.portal');
    return { url };
  },

  async 'usage.report'(ctx, params, call) {
    ctx.limits.take('usage', call.ip, 'usage reports from this address');
    const result = await reportUsage(ctx, params.host_id, params.records);
    await afterUsage(ctx, result.accountId, result.stored);
    return { acked: result.acked, refused: result.refused };
  },
};

/** New minutes: the outbox sends them, and the account's hosts get entitlements with the new minutes left. */
export async function afterUsage(ctx: RelayContext, accountId: string, stored: number): Promise<void> {
  if (stored === 0 || !ctx.billing.isOn) return;
  await ctx.bus.publish({ t: 'billing.usage', account_id: accountId });
}

/** The router let only trusted devices in (RELAY_PROCEDURES' auth); of those, the owner's. */
function owner(call: Call, what: string): DeviceRow {
  const device = signedIn(call);
  if (device.member_email !== null) {
    throw new HangarError('E_FORBIDDEN', `${what} is for the account's owner; ask them (you are a member)`);
  }
  return device;
}

function stripeOf(ctx: RelayContext): StripeApi {
  if (ctx.billing.stripe === undefined) {
    throw new HangarError(
      'E_BILLING_OFF',
      'billing is off on this relay (no Stripe keys): nothing is metered and every plan feature is on, nothing to buy',
    );
  }
  return ctx.billing.stripe;
}

/** The account's Stripe customer, made on first need (the idempotency key makes racing calls make one). */
async function customerOf(ctx: RelayContext, stripe: StripeApi, accountId: string): Promise<string> {
  const known = await ctx.db
    .selectFrom('billing_customers')
    .select('stripe_customer_id')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  if (known !== undefined) return known.stripe_customer_id;
  const account = await ctx.db
    .selectFrom('accounts')
    .select('email')
    .where('id', '=', accountId)
    .executeTakeFirstOrThrow();
  const customer = await stripe.createCustomer(accountId, account.email);
  await ctx.db
    .insertInto('billing_customers')
    .values({ account_id: accountId, stripe_customer_id: customer, created_at: ctx.now() })
    .onConflict((oc) => oc.column('account_id').doNothing())
    .execute();
  const row = await ctx.db
    .selectFrom('billing_customers')
    .select('stripe_customer_id')
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow();
  return row.stripe_customer_id;
}
