import { FINAL_JOB_STATES, type Disposable } from '@hangar/shared';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { AttemptLog } from './attempt-log.js';
import type { LogSource, LogState } from './log-sender.js';
import type { JobStore } from './job-store.js';

export function attemptDir(jobsDir: string, jobId: string, attempt: number): string {
  return join(jobsDir, jobId, String(attempt));
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

export interface LogSourceInput {
  jobId: string;
  number: number;
  jobsDir: string;
  store: JobStore;
  /** The attempt's log while it is being written. */
  live(): AttemptLog | undefined;
  onChange(listener: () => void): Disposable;
}

/**
 * Where an attempt's log stands: live while it runs (size as written), the file once it has
 * ended, nothing yet while the job waits in the queue for this attempt.
 */
export function logSourceFor(input: LogSourceInput): LogSource {
  const path = join(attemptDir(input.jobsDir, input.jobId, input.number), 'log');
  // An ended attempt's state never changes: the sender asks once per MiB it reads, and a query, a
  // parse and a stat for each cost more than the read itself (bench:jobs, a 100 MB log).
  let ended: LogState | undefined;
  const state = (): LogState => {
    if (ended) return ended;
    const live = input.live();
    if (live) return { path, size: live.size, final: undefined };
    const attempt = input.store.attempt(input.jobId, input.number);
    if (attempt) {
      const final = FINAL_JOB_STATES.includes(attempt.state)
        ? { exitCode: attempt.exit_code, message: `attempt ${input.number} ${attempt.state}` }
        : undefined;
      // An ended attempt's log is as long as it was when it ended (recorded then): a process that
      // escaped the job's group may still hold the file open, but what it writes is not the log.
      if (final) return (ended = { path, size: Math.min(attempt.log_size, fileSize(path)), final });
      return { path, size: fileSize(path), final };
    }
    const job = input.store.job(input.jobId);
    if (!job || FINAL_JOB_STATES.includes(job.state)) {
      return { path: undefined, size: 0, final: { exitCode: null, message: `attempt ${input.number} never ran` } };
    }
    return { path: undefined, size: 0, final: undefined };
  };
  return { state, onChange: input.onChange };
}
