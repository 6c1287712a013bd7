import { sql } from 'kysely';
import type { AccountPlan, PaidPlanId, RefusalReason } from '@hangar/shared';
import type { RelayDb } from '../store/db.js';
import type { RelayTables } from '../store/schema.js';
import { PLANS, PLAN_RANK, TRIAL_MS } from './plans.js';

/** Stripe statuses under which a subscription's plan applies (past_due: Stripe is retrying the card). */
export const LIVE_STATUSES = ['active', 'trialing', 'past_due'];
const DAY_MS = 24 * 60 * 60_000;

export type SubscriptionRow = RelayTables['subscriptions'];

/** Where an account stands: the one computation behind billing.status and every entitlement. */
export interface AccountState {
  plan: AccountPlan;
  trial: { startedAt: number; endsAt: number };
  period: { start: number; end: number };
  subscription: SubscriptionRow | undefined;
  used: number;
  included: number | null;
  /** Minutes past the included ones are billed (Pro with an overage price) rather than refused. */
  overageBilled: boolean;
  refusing: RefusalReason | null;
  /** Build minutes still allowed this period; null when there is no cap. */
  minutesLeft: number | null;
}

export interface StateInputs {
  billingOn: boolean;
  proOverage: boolean;
  now: number;
}

export async function accountState(db: RelayDb, accountId: string, inputs: StateInputs): Promise<AccountState> {
  const account = await db
    .selectFrom('accounts')
    .select('created_at')
    .where('id', '=', accountId)
    .executeTakeFirstOrThrow();
  const subscriptions = await db.selectFrom('subscriptions').selectAll().where('account_id', '=', accountId).execute();
  const { now } = inputs;
  const trial = { startedAt: account.created_at, endsAt: account.created_at + TRIAL_MS };
  const live = bestLive(subscriptions);
  let plan: AccountPlan;
  let period: { start: number; end: number };
  if (!inputs.billingOn) {
    plan = 'unmetered';
    period = calendarMonth(now);
  } else if (live !== undefined) {
    plan = live.plan as PaidPlanId;
    period = { start: live.period_start, end: live.period_end };
  } else if (now < trial.endsAt) {
    plan = 'trial';
    period = { start: trial.startedAt, end: trial.endsAt };
  } else {
    plan = 'none';
    period = { start: now - 30 * DAY_MS, end: now };
  }
  const used = await minutesIn(db, accountId, period);
  const planRow = plan === 'trial' || plan === 'pro' || plan === 'team' ? PLANS[plan] : undefined;
  const included = plan === 'none' ? 0 : (planRow?.includedMinutes ?? null);
  const overageBilled = plan === 'pro' && inputs.proOverage;
  let refusing: RefusalReason | null = null;
  if (plan === 'none') {
    refusing = subscriptions.length > 0 ? 'subscription_ended' : 'trial_ended';
  } else if (plan !== 'unmetered' && included !== null && !overageBilled && used >= included) {
    refusing = 'minutes_used_up';
  }
  const minutesLeft =
    refusing !== null ? 0 : plan === 'unmetered' || included === null || overageBilled ? null : included - used;
  return {
    plan,
    trial,
    period,
    subscription: live ?? latest(subscriptions),
    used,
    included,
    overageBilled,
    refusing,
    minutesLeft,
  };
}

/** The subscription that decides the plan: a live one, Team over Pro, then the latest period. */
export function bestLive(subscriptions: SubscriptionRow[]): SubscriptionRow | undefined {
  return subscriptions
    .filter((s) => LIVE_STATUSES.includes(s.status) && (s.plan === 'pro' || s.plan === 'team'))
    .sort(
      (a, b) =>
        PLAN_RANK[b.plan as PaidPlanId] - PLAN_RANK[a.plan as PaidPlanId] ||
        b.period_end - a.period_end ||
        b.created_at - a.created_at,
    )[0];
}

function latest(subscriptions: SubscriptionRow[]): SubscriptionRow | undefined {
  return [...subscriptions].sort((a, b) => b.created_at - a.created_at)[0];
}

async function minutesIn(db: RelayDb, accountId: string, period: { start: number; end: number }): Promise<number> {
  const row = await db
    .selectFrom('usage_records')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('account_id', '=', accountId)
    .where('minute_at', '>=', period.start)
    .where('minute_at', '<', period.end)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Minutes per UTC day from the period's start to today (or its end), days without minutes as 0. */
export async function minutesPerDay(
  db: RelayDb,
  accountId: string,
  period: { start: number; end: number },
  now: number,
): Promise<{ day: string; minutes: number }[]> {
  // A literal, not a parameter: PostgreSQL must see the same expression in SELECT and GROUP BY.
  const dayExpr = sql<number | string>`minute_at / ${sql.lit(DAY_MS)}`;
  const rows = await db
    .selectFrom('usage_records')
    .select([dayExpr.as('day'), (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('account_id', '=', accountId)
    .where('minute_at', '>=', period.start)
    .where('minute_at', '<', period.end)
    .groupBy(dayExpr)
    .execute();
  const counts = new Map(rows.map((row) => [Math.floor(Number(row.day)), Number(row.n)]));
  const first = Math.floor(period.start / DAY_MS);
  const last = Math.floor((Math.min(period.end, now) - 1) / DAY_MS);
  const days: { day: string; minutes: number }[] = [];
  for (let day = first; day <= last && days.length < 400; day++) {
    days.push({ day: new Date(day * DAY_MS).toISOString().slice(0, 10), minutes: counts.get(day) ?? 0 });
  }
  return days;
}

function calendarMonth(now: number): { start: number; end: number } {
  const date = new Date(now);
  return {
    start: Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1),
    end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1),
  };
}
