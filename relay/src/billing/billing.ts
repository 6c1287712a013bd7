import {
  ENTITLEMENT_VALID_MS,
  refusalMessage,
  signEntitlement,
  type BillingStatus,
  type Ed25519Signer,
  type Entitlement,
  type MemberRole,
} from '@hangar/shared';
import type { RelayDb } from '../store/db.js';
import { accountState, minutesPerDay, type AccountState } from './account-state.js';
import { publicKeyHex } from './entitlement-key.js';
import { DEFAULT_MINUTE_MS } from './plans.js';
import { StripeApi, type StripeSettings } from './stripe-api.js';

/** How billing runs on this relay: off without Stripe settings (a self-hosted relay). */
export interface BillingOptions {
  stripe?: StripeSettings;
  /** A billed minute (default 60 s); tests shorten it. */
  minuteMs?: number;
  /** How often a connected host gets a fresh entitlement (default hourly; each is valid 24 h). */
  entitlementRenewMs?: number;
  /** The meter outbox: how often it looks for unsent minutes and how many requests it keeps in flight. */
  outbox?: { intervalMs?: number; concurrency?: number; batch?: number };
}

export const DEFAULT_ENTITLEMENT_RENEW_MS = 60 * 60_000;

/**
 * Billing's state and decisions, shared by the HTTP handlers, the agent sockets and the
 * webhook: an account's plan and minutes (account-state.ts), its status for the app, and the
 * entitlements signed for its hosts.
 */
export class Billing {
  readonly stripe: StripeApi | undefined;
  readonly minuteMs: number;
  readonly renewMs: number;
  readonly entitlementKey: string;

  constructor(
    private readonly db: RelayDb,
    private readonly signer: Ed25519Signer,
    readonly options: BillingOptions,
    private readonly now: () => number,
  ) {
    this.stripe = options.stripe ? new StripeApi(options.stripe, now) : undefined;
    this.minuteMs = options.minuteMs ?? DEFAULT_MINUTE_MS;
    this.renewMs = options.entitlementRenewMs ?? DEFAULT_ENTITLEMENT_RENEW_MS;
    this.entitlementKey = publicKeyHex(signer);
  }

  get isOn(): boolean {
    return this.stripe !== undefined;
  }

  state(accountId: string): Promise<AccountState> {
    return accountState(this.db, accountId, {
      billingOn: this.isOn,
      proOverage: this.options.stripe?.prices.proOverage !== undefined,
      now: this.now(),
    });
  }

  async status(accountId: string, role: MemberRole): Promise<BillingStatus> {
    const now = this.now();
    const state = await this.state(accountId);
    const sub = state.subscription;
    const live = state.plan === 'pro' || state.plan === 'team';
    return {
      billing: this.isOn ? 'on' : 'off',
      plan: state.plan,
      role,
      trial: {
        started_at: state.trial.startedAt,
        ends_at: state.trial.endsAt,
        days_left: Math.max(0, Math.ceil((state.trial.endsAt - now) / (24 * 60 * 60_000))),
      },
      period: state.period,
      minutes: {
        used: state.used,
        included: state.included,
        overage: state.included === null ? 0 : Math.max(0, state.used - state.included),
      },
      next_invoice_at: live && sub !== undefined && sub.cancel_at_period_end === 0 ? sub.period_end : null,
      subscription:
        sub !== undefined && (sub.plan === 'pro' || sub.plan === 'team')
          ? { plan: sub.plan, status: sub.status, cancel_at_period_end: sub.cancel_at_period_end === 1 }
          : null,
      payment_failed: live && sub?.status === 'past_due',
      refusing: state.refusing === null ? null : { reason: state.refusing, message: refusalMessage(state.refusing) },
      minutes_per_day: await minutesPerDay(this.db, accountId, state.period, now),
    };
  }

  /** A fresh entitlement for one host, from the account's state now, signed by the relay's key. */
  async entitlement(accountId: string, hostId: string, state?: AccountState): Promise<Entitlement> {
    const current = state ?? (await this.state(accountId));
    const issuedAt = this.now();
    return signEntitlement(this.signer, {
      account_id: accountId,
      host_id: hostId,
      plan: current.plan,
      metered: this.isOn,
      minutes_left: current.minutesLeft,
      reason: current.refusing,
      minute_ms: this.minuteMs,
      issued_at: issuedAt,
      valid_until: issuedAt + ENTITLEMENT_VALID_MS,
    });
  }
}
