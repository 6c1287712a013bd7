import { z } from 'zod';
import { JobId } from './jobs.js';
import { Ed25519PublicKeyHex, Ed25519SignatureHex } from './link.js';
import { AccountId, Email, EpochMs, HostId } from './relay-common.js';

/**
 * Billing on the relay (relay/PROTOCOL.md "Billing"): plans, build-job minutes reported by
 * hosts as signed usage records, and the signed entitlements hosts check before a metered job.
 * The procedures and socket messages that carry these are in relay.ts; the signed bytes in
 * shared/src/relay/statements.ts; verifying and reading an entitlement in
 * shared/src/relay/entitlement.ts.
 */

/** The plans one can be on (their prices and limits: relay/src/billing/plans.ts). */
export const PlanId = z.enum(['trial', 'pro', 'team']);
export type PlanId = z.infer<typeof PlanId>;
/** What one can buy at Checkout. */
export const PaidPlanId = z.enum(['pro', 'team']);
export type PaidPlanId = z.infer<typeof PaidPlanId>;

/**
 * What an account is on now: a plan; `none` when the trial is over and no subscription is
 * active (there is no free tier); `unmetered` when billing is off on this relay (self-hosted).
 */
export const AccountPlan = z.enum(['trial', 'pro', 'team', 'none', 'unmetered']);
export type AccountPlan = z.infer<typeof AccountPlan>;

/** Why metered jobs are refused; each comes with a message saying what to do. */
export const RefusalReason = z.enum(['trial_ended', 'minutes_used_up', 'subscription_ended']);
export type RefusalReason = z.infer<typeof RefusalReason>;

export const MemberRole = z.enum(['owner', 'member']);
export type MemberRole = z.infer<typeof MemberRole>;

/** A calendar day (UTC) of the current period and the build minutes counted on it. */
export const MinutesOnDay = z.object({
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a day as YYYY-MM-DD'),
  minutes: z.number().int().nonnegative(),
});

export const BillingStatus = z.object({
  /** `off`: this relay has no Stripe keys; everything is allowed and nothing is metered. */
  billing: z.enum(['on', 'off']),
  plan: AccountPlan,
  /** The caller's role in the account: only the owner may buy, manage billing or invite. */
  role: MemberRole,
  trial: z.object({ started_at: EpochMs, ends_at: EpochMs, days_left: z.number().int().nonnegative() }),
  /** The period minutes are counted in: the subscription's, else the trial's. */
  period: z.object({ start: EpochMs, end: EpochMs }),
  minutes: z.object({
    used: z.number().int().nonnegative(),
    /** Included in the plan this period; null when unlimited. */
    included: z.number().int().nonnegative().nullable(),
    /** Minutes beyond the included ones (billed per minute on Pro). */
    overage: z.number().int().nonnegative(),
  }),
  /** When the next invoice is made (the period's end), or null without an active subscription. */
  next_invoice_at: EpochMs.nullable(),
  subscription: z
    .object({
      plan: PaidPlanId,
      /** Stripe's subscription status: active, past_due, canceled, … */
      status: z.string(),
      cancel_at_period_end: z.boolean(),
    })
    .nullable(),
  /** The last invoice failed and Stripe is retrying: jobs still run, the card needs fixing. */
  payment_failed: z.boolean(),
  /** Set while metered jobs are being refused on this account's hosts. */
  refusing: z.object({ reason: RefusalReason, message: z.string() }).nullable(),
  /** Build minutes per UTC day of the period, oldest first, days without minutes included. */
  minutes_per_day: z.array(MinutesOnDay),
});
export type BillingStatus = z.infer<typeof BillingStatus>;

/** An agent's id for one attempt of a job (unique on its host): letters, digits, `.`, `_`, `:`, `-`. */
export const AttemptId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'attempt_id must be 1-64 letters, digits, ".", "_", ":" or "-"');
/** Minute 0 is the attempt's first started minute; a week of minutes is the most one attempt may count. */
export const MINUTE_INDEX_MAX = 7 * 24 * 60;

/**
 * One started minute of one attempt of a build job on an enrolled host, signed by the host key
 * (usageRecordBytes). Stored once per (host, attempt, minute): usageRecordKey names it.
 */
export const UsageRecord = z.object({
  attempt_id: AttemptId,
  job_id: JobId,
  minute_index: z.number().int().nonnegative().max(MINUTE_INDEX_MAX),
  /** When the attempt started; minute n began at started_at + n × minute_ms. */
  started_at: EpochMs,
  host_key: Ed25519PublicKeyHex,
  signature: Ed25519SignatureHex,
});
export type UsageRecord = z.infer<typeof UsageRecord>;

/** `u1_` + 40 hex digits: the key of one (host, attempt, minute), and its Stripe meter event identifier. */
export const UsageKey = z.string().regex(/^u1_[0-9a-f]{40}$/, 'expected a usage key (u1_ and 40 hex digits)');

export const USAGE_BATCH_MAX = 500;

export const UsageReportParams = z.object({
  host_id: HostId,
  records: z.array(UsageRecord).min(1).max(USAGE_BATCH_MAX),
});
export const UsageReportResult = z.object({
  /** Stored now or before: the agent may delete its copies of these. */
  acked: z.array(UsageKey),
  /** Never accepted (a bad signature, another host's key): keeping them would not help. */
  refused: z.array(z.object({ key: UsageKey, code: z.string(), message: z.string() })),
});
export type UsageReportResult = z.infer<typeof UsageReportResult>;

/**
 * What a host may do, signed by the relay's entitlement key (entitlementBytes), valid 24 h and
 * renewed while the host is online. A host checks it before a metered job (a build job; never a
 * terminal or a preview) and keeps honouring the last one until valid_until, so a relay outage
 * never stops builds.
 */
export const EntitlementFields = z.object({
  account_id: AccountId,
  host_id: HostId,
  plan: AccountPlan,
  /** False when billing is off: nothing is counted or refused. */
  metered: z.boolean(),
  /** Build minutes still allowed this period; null when there is no cap (Team, Pro with overage). */
  minutes_left: z.number().int().nonnegative().nullable(),
  /** Set when metered jobs are refused (minutes_left is then 0). */
  reason: RefusalReason.nullable(),
  /** How long one billed minute is (60000; tests shorten it). */
  minute_ms: z.number().int().positive(),
  issued_at: EpochMs,
  valid_until: EpochMs,
});
export type EntitlementFields = z.infer<typeof EntitlementFields>;
export const Entitlement = EntitlementFields.extend({ signature: Ed25519SignatureHex });
export type Entitlement = z.infer<typeof Entitlement>;

/** An entitlement is valid this long after it is issued. */
export const ENTITLEMENT_VALID_MS = 24 * 60 * 60_000;

export const AccountMember = z.object({
  email: Email,
  role: MemberRole,
  status: z.enum(['invited', 'active']),
  invited_at: EpochMs.nullable(),
  joined_at: EpochMs.nullable(),
});
export type AccountMember = z.infer<typeof AccountMember>;

/** 32 random bytes, base64url: an invitation's secret (the relay keeps its SHA-256). */
export const InviteToken = z
  .string()
  .regex(/^inv1_[A-Za-z0-9_-]{43}$/, 'expected an invitation token (inv1_ and 43 base64url characters)');
