import { HangarError, type Disposable } from '@hangar/shared';
import { clientKey, refill, type Bucket } from '../ops/rate-limit.js';

/**
 * Throttling of password sign-ins by wrong passwords, as OWASP's authentication cheat sheet and
 * most login systems do it: who can be slowed down is whoever makes the mistakes, not the
 * account's owner elsewhere. In memory per replica (with N replicas, N times the budget).
 *
 * - per (email, address): a few wrong passwords free, then each further one waits, doubling;
 *   a success from there clears it. This is what a user who mistypes meets.
 * - per address (all emails): more free, then the same backoff: one address guessing many accounts.
 * - per email, from everywhere: a much higher bound, only against guessing spread over many
 *   addresses. It is the one bound others can spend for an account, so it never applies to:
 * - a device key the account already trusts (first or endorsed), proven by the login proof:
 *   it has a backoff of its own per (email, key) and none of the bounds above, so nobody else
 *   can lock its sign-in.
 */
export interface LoginThrottleLimits {
  /** Wrong passwords for one email from one address (or on one trusted key) before backoff. */
  pairFree: number;
  /** Wrong passwords from one address, over all emails, before backoff. */
  addressFree: number;
  /** The first wait once past the free ones; each further wrong password doubles it. */
  firstWaitMs: number;
  maxWaitMs: number;
  /** Per email from every address: wrong passwords at once, then refilled per hour. */
  emailBurst: number;
  emailPerHour: number;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleLimits = {
  pairFree: 5,
  addressFree: 20,
  firstWaitMs: 30_000,
  maxWaitMs: 15 * 60_000,
  emailBurst: 100,
  emailPerHour: 100,
};

/** Counts of wrong passwords are forgotten after this long without one (the longest wait, and then some). */
const FORGET_AFTER_MS = 60 * 60_000;

/** Who is signing in: from an address, or on a device key the account trusts. */
export type LoginSource = { email: string; address: string } | { email: string; trustedKey: string };

interface Backoff {
  failures: number;
  lastAt: number;
  blockedUntil: number;
}

export class LoginThrottle implements Disposable {
  private readonly backoffs = new Map<string, Backoff>();
  private readonly emails = new Map<string, Bucket>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly limits: LoginThrottleLimits,
    private readonly now: () => number,
  ) {
    this.sweep = setInterval(() => this.forgetIdle(), 60_000).unref();
  }

  /** Throws E_RATE_LIMITED (details.retry_after_ms) when this sign-in must wait; before the password is checked. */
  check(source: LoginSource): void {
    const now = this.now();
    if ('trustedKey' in source) {
      this.refuseWhileBlocked(keyOf(source), now, 'too many wrong passwords on this device');
      return;
    }
    this.refuseWhileBlocked(pairOf(source), now, `too many wrong passwords for ${source.email} from this address`);
    this.refuseWhileBlocked(addressOf(source), now, 'too many wrong passwords from this address');
    const bucket = this.emailBucket(source.email, now);
    if (bucket.tokens < 1) {
      const retryAfterMs = Math.ceil(((1 - bucket.tokens) / this.limits.emailPerHour) * 3_600_000);
      throw limited(
        `too many wrong passwords for ${source.email} from many addresses; sign in on a device this account already trusts, or`,
        retryAfterMs,
      );
    }
  }

  failed(source: LoginSource): void {
    const now = this.now();
    if ('trustedKey' in source) {
      this.fail(keyOf(source), this.limits.pairFree, now);
      return;
    }
    this.fail(pairOf(source), this.limits.pairFree, now);
    this.fail(addressOf(source), this.limits.addressFree, now);
    this.emailBucket(source.email, now).tokens -= 1;
  }

  /** The right password: this pair's (or key's) count starts over. The address's and the email's do not. */
  succeeded(source: LoginSource): void {
    this.backoffs.delete('trustedKey' in source ? keyOf(source) : pairOf(source));
  }

  private refuseWhileBlocked(id: string, now: number, what: string): void {
    const backoff = this.backoffs.get(id);
    if (backoff === undefined || backoff.blockedUntil <= now) return;
    throw limited(what, backoff.blockedUntil - now);
  }

  private fail(id: string, free: number, now: number): void {
    let backoff = this.backoffs.get(id);
    if (backoff === undefined || now - backoff.lastAt > FORGET_AFTER_MS) {
      backoff = { failures: 0, lastAt: now, blockedUntil: 0 };
      this.backoffs.set(id, backoff);
    }
    backoff.failures += 1;
    backoff.lastAt = now;
    const over = backoff.failures - free;
    if (over > 0) {
      const wait = Math.min(this.limits.maxWaitMs, this.limits.firstWaitMs * 2 ** Math.min(over - 1, 30));
      backoff.blockedUntil = now + wait;
    }
  }

  private emailBucket(email: string, now: number): Bucket {
    const bucket = refill(this.emails.get(email), this.limits.emailBurst, this.limits.emailPerHour, 3_600_000, now);
    this.emails.set(email, bucket);
    return bucket;
  }

  private forgetIdle(): void {
    const now = this.now();
    for (const [id, backoff] of this.backoffs) {
      if (now - backoff.lastAt > FORGET_AFTER_MS && backoff.blockedUntil <= now) this.backoffs.delete(id);
    }
    for (const [email, bucket] of this.emails) {
      const full = bucket.tokens + ((now - bucket.updatedAt) / 3_600_000) * this.limits.emailPerHour;
      if (full >= this.limits.emailBurst) this.emails.delete(email);
    }
  }

  dispose(): void {
    clearInterval(this.sweep);
    this.backoffs.clear();
    this.emails.clear();
  }
}

/** `--rate-limit-scale`: more wrong passwords before each bound (the waits stay as they are). */
export function scaledLoginThrottle(scale: number): LoginThrottleLimits {
  const d = DEFAULT_LOGIN_THROTTLE;
  return {
    ...d,
    pairFree: d.pairFree * scale,
    addressFree: d.addressFree * scale,
    emailBurst: d.emailBurst * scale,
    emailPerHour: d.emailPerHour * scale,
  };
}

function pairOf(source: { email: string; address: string }): string {
  return `pair\u0000${source.email}\u0000${clientKey(source.address)}`;
}

function addressOf(source: { address: string }): string {
  return `address\u0000${clientKey(source.address)}`;
}

function keyOf(source: { email: string; trustedKey: string }): string {
  return `key\u0000${source.email}\u0000${source.trustedKey}`;
}

function limited(what: string, retryAfterMs: number): HangarError {
  return new HangarError('E_RATE_LIMITED', `${what}; try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`, {
    retry_after_ms: retryAfterMs,
  });
}
