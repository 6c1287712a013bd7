/** Timers through an interface, so tests drive time by hand instead of waiting for it. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface RestartPolicy {
  /** Restarts allowed within windowMs; one more crash ends supervision (VS Code's pty host: 5). */
  maxRestarts: number;
  windowMs: number;
  /** A child that stayed up this long was healthy: its crash starts a fresh count and backoff. */
  stableMs: number;
  /** The first restart waits this long; each further one twice as long as the last, up to maxDelayMs. */
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * Each delay is shortened by up to this fraction at random, so children of several supervisors
   * that crashed together (a shared dependency went away) do not come back in lockstep.
   */
  jitter: number;
}

/**
 * 5 restarts in 5 minutes: a crash loop (1 + 2 + 4 + 8 + 16 s of backoff) ends with an error
 * within a minute, while an agent that crashes once a day is restarted for ever.
 */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 5 * 60_000,
  stableMs: 60_000,
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
  jitter: 0.25,
};

export type RestartDecision =
  | { restart: true; delayMs: number; /** 1-based, within the window. */ count: number }
  | { restart: false; count: number };

/** Counts a child's crashes against a RestartPolicy and says when, or whether, to start it again. */
export class RestartBudget {
  /** When each restart within the window was granted. */
  private granted: number[] = [];
  /** Restarts since the child last ran stably: the backoff exponent. */
  private streak = 0;

  constructor(
    readonly policy: RestartPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Restarts granted within the window that ends at `now`. */
  count(now: number): number {
    return this.granted.filter((at) => now - at < this.policy.windowMs).length;
  }

  /** The child stopped at `now` after running `uptimeMs` (0 when it never became ready). */
  next(now: number, uptimeMs: number): RestartDecision {
    if (uptimeMs >= this.policy.stableMs) {
      this.granted = [];
      this.streak = 0;
    }
    this.granted = this.granted.filter((at) => now - at < this.policy.windowMs);
    if (this.granted.length >= this.policy.maxRestarts) return { restart: false, count: this.granted.length };
    this.granted.push(now);
    this.streak += 1;
    const base = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** (this.streak - 1));
    const delayMs = Math.round(base * (1 - this.policy.jitter * this.random()));
    return { restart: true, delayMs, count: this.granted.length };
  }
}
