import { appendFileSync, existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Executor } from './executors/types.js';
import type { JobStore } from './job-store.js';
import { attemptDir } from './log-source.js';
import { afterAttempt, type Backoff } from './retry-policy.js';

export interface RecoveryInput {
  store: JobStore;
  executors: ReadonlyMap<string, Executor>;
  jobsDir: string;
  backoff: Backoff;
  logger: Logger;
}

const LOST = 'the agent stopped while this attempt ran (crash or kill -9); what it left running was stopped';

/**
 * At start, before the queue runs: every attempt still `preparing` or `running` in the database
 * was interrupted by a crash. Its leftovers are killed through the executor's checkpoint, it is
 * marked `lost` (its log kept), and its job is retried if retries remain, else ends `lost`.
 */
export async function recoverUnfinished(input: RecoveryInput): Promise<void> {
  const { store, logger } = input;
  const now = Date.now();
  for (const attempt of store.unfinishedAttempts()) {
    const executor = input.executors.get(attempt.executor);
    if (attempt.checkpoint && executor) {
      try {
        await executor.recover(attempt.checkpoint);
      } catch (error) {
        logger.error({ err: error, job: attempt.jobId, attempt: attempt.number }, 'could not clean up a lost attempt');
      }
    }
    const dir = attemptDir(input.jobsDir, attempt.jobId, attempt.number);
    const log = join(dir, 'log');
    if (existsSync(log)) appendFileSync(log, `\n[hangar] attempt lost: ${LOST}\n`);
    store.updateAttempt(attempt.jobId, attempt.number, {
      state: 'lost',
      finished_at: now,
      log_size: existsSync(log) ? statSync(log).size : 0,
      error: LOST,
    });
    await rm(join(dir, 'work'), { recursive: true, force: true });
    logger.warn({ job: attempt.jobId, attempt: attempt.number }, 'attempt lost');
  }
  for (const job of store.jobsInStates(['preparing', 'running'])) {
    const error = `attempt ${job.attempt} was lost: ${LOST}`;
    store.updateJob(
      job.id,
      afterAttempt(job, { state: 'lost', exitCode: job.exitCode, error, retryable: true }, now, input.backoff),
    );
  }
}
