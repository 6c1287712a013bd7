import { isIP } from 'node:net';
import { HangarError, type Disposable } from '@hangar/shared';

/**
 * Token buckets per (limit, key): key is a source address (counted as clientKey has it) or an
 * account. Kept in memory per
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
  /** auth.refresh and auth.logout, per address. */
  refresh: { burst: 30, perMinute: 60 },
  /**
   * auth.login proofs that do not verify, per address: each costs a signature check before any
   * other limit can tell who is asking. Good proofs never count, and a key the account trusts
   * is checked even past it (a trusted device is not held by others at its address).
   */
  badProof: { burst: 10, perMinute: 20 },
  enrollToken: { burst: 10, perMinute: 10 },
  enroll: { burst: 10, perMinute: 10 },
  socket: { burst: 60, perMinute: 120 },
  signal: { burst: 200, perMinute: 3000 },
  /** Relayed links asked for, per account (each makes the agent dial back). */
  splice: { burst: 30, perMinute: 60 },
  api: { burst: 120, perMinute: 600 },
  /**
   * presence.update on an agent socket, per host: an agent sends one at connect and when its
   * addresses change; each costs a signature check, a write and a message to every device.
   */
  presence: { burst: 10, perMinute: 20 },
  /** An `auth` that renews a device socket's token, per account (the first one is the socket limit's). */
  socketAuth: { burst: 20, perMinute: 60 },
  /** usage.report over HTTP per address, and on an agent socket per host (each up to 500 records). */
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
    const bucket = this.bucket(limit, key);
    this.refuseIfEmpty(bucket, limit, what);
    bucket.tokens -= 1;
  }

  /** Throws as take would, but takes nothing: for work that is charged only when it fails. */
  check(limit: LimitName, key: string, what: string): void {
    this.refuseIfEmpty(this.bucket(limit, key), limit, what);
  }

  /** Takes one token, or what is left of one, never refusing: for work already done. */
  spend(limit: LimitName, key: string): void {
    const bucket = this.bucket(limit, key);
    bucket.tokens = Math.max(0, bucket.tokens - 1);
  }

  private refuseIfEmpty(bucket: Bucket, limit: LimitName, what: string): void {
    if (bucket.tokens >= 1) return;
    const retryAfterMs = Math.ceil(((1 - bucket.tokens) / this.limits[limit].perMinute) * 60_000);
    throw new HangarError('E_RATE_LIMITED', `too many ${what}; try again in ${Math.ceil(retryAfterMs / 1000)} s`, {
      retry_after_ms: retryAfterMs,
    });
  }

  private bucket(limit: LimitName, key: string): Bucket {
    const spec = this.limits[limit];
    const id = `${limit}\u0000${clientKey(key)}`;
    const bucket = refill(this.buckets.get(id), spec.burst, spec.perMinute, 60_000, this.now());
    this.buckets.set(id, bucket);
    return bucket;
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

/**
 * Who an address stands for, for every per-address limit (these and the login throttle's):
 * - a port is dropped: behind --trust-proxy the X-Forwarded-For entry may carry one
 *   (`203.0.113.7:51234`, `[2001:db8::1]:443`), a new one per connection;
 * - an IPv4 address is itself (also IPv4-mapped, ::ffff:a.b.c.d);
 * - an IPv6 address counts by its /64, the least a host or a home is given: one client has 2^64
 *   addresses, a new budget each.
 * Anything else (an account id, a peer Node could not name) is returned as it is.
 */
export function clientKey(address: string): string {
  const bare = withoutPort(address).replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  const [head = '', tail] = bare.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').flatMap(hextets));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const full = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${full
    .slice(0, 4)
    .map((group) => parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * The client's address behind --trust-proxy, exactly as Fastify's `request.ip` has it (its
 * @fastify/forwarded parse with our one trusted hop): the last non-empty X-Forwarded-For entry, the
 * one the proxy (our socket's peer) wrote, trimmed of spaces and tabs only; with none, the peer.
 * `203.0.113.7, ` is 203.0.113.7, never the proxy's own address. Every path reads the client's
 * address through it (RelayContext.clientAddress: routes, WebSocket and splice upgrades), so that
 * every per-address limit keys one client the same (clientKey), and the same as Fastify's logs.
 */
export function forwardedClient(peer: string, header: string | string[] | undefined): string {
  const entries = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((entry) => entry !== '');
  return entries.at(-1) ?? peer;
}

/** `[v6]:port` and `[v6]` → v6; `a.b.c.d:port` → a.b.c.d; anything else as it is. */
function withoutPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(address);
  return v4 ? v4[1]! : address;
}

/** A group of an IPv6 address as hextets: an embedded IPv4 address (…:1.2.3.4) is two. */
function hextets(group: string): string[] {
  if (!group.includes('.')) return [group];
  const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/** `--rate-limit-scale`: multiplies every budget (tests, benchmarks, a big office behind one NAT). */
export function scaledLimits(scale: number): Record<LimitName, BucketSpec> {
  const out = {} as Record<LimitName, BucketSpec>;
  for (const [name, spec] of Object.entries(DEFAULT_LIMITS) as [LimitName, BucketSpec][]) {
    out[name] = { burst: spec.burst * scale, perMinute: spec.perMinute * scale };
  }
  return out;
}
