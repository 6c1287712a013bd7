import { HangarError, type Disposable } from '@hangar/shared';

/**
 * Token buckets per (limit, key): key is a source address or an account. Kept in memory per
 * replica, so with N replicas behind a balancer a client gets at most N times the budget;
 * the limits are set so that this is still far below what a guesser needs.
 */
export interface BucketSpec {
  /** Requests allowed at once. */
  burst: number;
  /** Refill rate. */
  perMinute: number;
}

export const DEFAULT_LIMITS = {
  signup: { burst: 5, perMinute: 5 },
  /** Sign-in requests per address (not from a trusted device key); wrong passwords: accounts/login-throttle.ts. */
  login: { burst: 10, perMinute: 20 },
  refresh: { burst: 30, perMinute: 60 },
  enrollToken: { burst: 10, perMinute: 10 },
  enroll: { burst: 10, perMinute: 10 },
  socket: { burst: 60, perMinute: 120 },
  signal: { burst: 200, perMinute: 3000 },
  /** Relayed links asked for, per account (each makes the agent dial back). */
  splice: { burst: 30, perMinute: 60 },
  api: { burst: 120, perMinute: 600 },
  /** usage.report over HTTP, per address (the agent socket carries most reports). */
  usage: { burst: 60, perMinute: 600 },
} satisfies Record<string, BucketSpec>;
export type LimitName = keyof typeof DEFAULT_LIMITS;

export interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Refills `bucket` (or a full new one) up to `burst` at `perPeriod` tokens per `periodMs`, as of
 * `now`. Every token bucket of the relay: these limits, and the login throttle's per-email bound.
 */
export function refill(
  bucket: Bucket | undefined,
  burst: number,
  perPeriod: number,
  periodMs: number,
  now: number,
): Bucket {
  const refilled = bucket ?? { tokens: burst, updatedAt: now };
  refilled.tokens = Math.min(burst, refilled.tokens + ((now - refilled.updatedAt) / periodMs) * perPeriod);
  refilled.updatedAt = now;
  return refilled;
}

const FORGET_AFTER_MS = 10 * 60_000;

export class RateLimiter implements Disposable {
  private readonly buckets = new Map<string, Bucket>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly limits: Record<LimitName, BucketSpec>,
    private readonly now: () => number,
  ) {
    // Idle buckets are full again long before this; forgetting them bounds memory.
    this.sweep = setInterval(() => this.forgetIdle(), 60_000).unref();
  }

  /** Takes one token or throws E_RATE_LIMITED with details.retry_after_ms. */
  take(limit: LimitName, key: string, what: string): void {
    const spec = this.limits[limit];
    const id = `${limit}\u0000${key}`;
    const now = this.now();
    const bucket = refill(this.buckets.get(id), spec.burst, spec.perMinute, 60_000, now);
    this.buckets.set(id, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryAfterMs = Math.ceil(((1 - bucket.tokens) / spec.perMinute) * 60_000);
    throw new HangarError('E_RATE_LIMITED', `too many ${what}; try again in ${Math.ceil(retryAfterMs / 1000)} s`, {
      retry_after_ms: retryAfterMs,
    });
  }

  private forgetIdle(): void {
    const cutoff = this.now() - FORGET_AFTER_MS;
    for (const [id, bucket] of this.buckets) if (bucket.updatedAt < cutoff) this.buckets.delete(id);
  }

  dispose(): void {
    clearInterval(this.sweep);
    this.buckets.clear();
  }
}

/** `--rate-limit-scale`: multiplies every budget (tests, benchmarks, a big office behind one NAT). */
export function scaledLimits(scale: number): Record<LimitName, BucketSpec> {
  const out = {} as Record<LimitName, BucketSpec>;
  for (const [name, spec] of Object.entries(DEFAULT_LIMITS) as [LimitName, BucketSpec][]) {
    out[name] = { burst: spec.burst * scale, perMinute: spec.perMinute * scale };
  }
  return out;
}
