import type { AttemptOutcome } from './attempt-runner.js';
import type { JobPatch, JobRecord } from './job-store.js';

/** Delay before retry n (0-based) is base·2ⁿ, at most max. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1000, maxMs: 60_000 };

export function retryDelay(backoff: Backoff, failures: number): number {
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** failures);
}

/**
 * What a job becomes after an attempt: back in the queue (requeued by a shutdown, or a retryable
 * failure with retries left, after the backoff), else final with the attempt's state. `lost`
 * (the agent died under the attempt) counts as a retryable failure; timeouts and cancels are final.
 */
export function afterAttempt(
  job: JobRecord,
  outcome: Pick<AttemptOutcome, 'exitCode' | 'error' | 'retryable'> & {
    state: AttemptOutcome['state'] | 'lost';
  },
  now: number,
  backoff: Backoff,
): JobPatch {
  if (outcome.state === 'requeued') return { state: 'queued', queuedAt: now, notBefore: 0 };
  const failed = outcome.state === 'failed' || outcome.state === 'lost';
  if (failed && outcome.retryable && job.failures < job.spec.retries) {
    return {
      state: 'queued',
      failures: job.failures + 1,
      queuedAt: now,
      notBefore: now + retryDelay(backoff, job.failures),
      exitCode: outcome.exitCode,
      error: outcome.error,
    };
  }
  return {
    state: outcome.state,
    failures: job.failures + (failed ? 1 : 0),
    finishedAt: now,
    exitCode: outcome.exitCode,
    error: outcome.error,
  };
}
