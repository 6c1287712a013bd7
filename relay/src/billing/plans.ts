import type { PlanId } from '@hangar/shared';

/**
 * The plans, in one table so they can change in one place (prices are what Stripe charges; the
 * Stripe prices themselves are configured with --stripe-price-pro / --stripe-price-team).
 * What is metered: minutes of build jobs (any executor) on an account's enrolled hosts, per
 * attempt, rounded up per started minute. Terminals, previews and directly paired hosts are
 * never metered and never refused.
 */
export interface Plan {
  id: PlanId;
  /** What the user sees. */
  name: string;
  /** Per month, in US cents; 0 for the trial (no card). */
  monthlyPriceCents: number;
  /** Build-job minutes included per period; null = unlimited. */
  includedMinutes: number | null;
  /** Minutes past the included ones are billed per minute (Stripe meter); else they are refused. */
  overage: boolean;
  /** Several people in one account (the owner invites by email). */
  members: boolean;
  /** Only the trial: how long it lasts from signup, after which nothing is free. */
  lengthDays?: number;
}

export const PLANS: Record<PlanId, Plan> = {
  trial: {
    id: 'trial',
    name: 'Trial (7 days of Pro)',
    monthlyPriceCents: 0,
    includedMinutes: 300,
    // No card on file: minutes past Pro's allowance cannot be billed, so they are refused.
    overage: false,
    members: false,
    lengthDays: 7,
  },
  pro: { id: 'pro', name: 'Pro', monthlyPriceCents: 20_00, includedMinutes: 300, overage: true, members: false },
  team: { id: 'team', name: 'Team', monthlyPriceCents: 200_00, includedMinutes: null, overage: false, members: true },
};

export const TRIAL_MS = PLANS.trial.lengthDays! * 24 * 60 * 60_000;

/** A billed minute; tests shorten it (--billing-minute-ms) so that short jobs span several. */
export const DEFAULT_MINUTE_MS = 60_000;

/** Team over Pro when an account has both (a switch in progress). */
export const PLAN_RANK: Record<PlanId, number> = { trial: 0, pro: 1, team: 2 };
