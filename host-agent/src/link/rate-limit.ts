/**
 * Token bucket: with the default of one token per second and a burst of 3, an online guesser
 * gets at most ~600 tries in a code's 10 minutes from one source, and the per-code limit
 * (5 failures) stops every source together long before that.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    private readonly now: () => number,
  ) {
    this.tokens = capacity;
    this.updatedAt = now();
  }

  /** Takes a token, or returns how many ms until one is available. */
  take(): { ok: true } | { ok: false; retryAfterMs: number } {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - this.tokens) / this.refillPerSecond) * 1000) };
  }

  /** Full again: forgetting this bucket would change nothing. */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.capacity;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.refillPerSecond);
    this.updatedAt = now;
  }
}

/**
 * Sources remembered at once. Past it the least recently seen is forgotten (its next attempt
 * starts with a full bucket): 4,096 buckets are ~0.5 MB, and a peer that cycles through more
 * source addresses than that still meets the per-code limit, which is shared by all.
 */
export const MAX_PAIRING_SOURCES = 4096;

/**
 * One pairing bucket per source (an IPv4 address or an IPv6 /64, see sourceKey): a peer that
 * spends its own attempts no longer spends the owner's, who pairs from another address.
 */
export class PerSourceBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: { burst: number; perSecond: number },
    private readonly now: () => number,
    private readonly maxSources = MAX_PAIRING_SOURCES,
  ) {}

  take(source: string): ReturnType<TokenBucket['take']> {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.rate.burst, this.rate.perSecond, this.now);
      if (this.buckets.size >= this.maxSources) this.forgetOne();
    } else {
      this.buckets.delete(source); // re-inserted below: the Map's order is least recently seen first
    }
    this.buckets.set(source, bucket);
    return bucket.take();
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Drops a bucket that is full again (losing nothing) if the oldest few hold one, else the oldest. */
  private forgetOne(): void {
    let checked = 0;
    for (const [source, bucket] of this.buckets) {
      if (bucket.full) {
        this.buckets.delete(source);
        return;
      }
      if (++checked >= 64) break;
    }
    this.buckets.delete(this.buckets.keys().next().value!);
  }
}
