import { toHangarError } from '@hangar/shared';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AttemptLog } from './attempt-log.js';
import { RunningAttempt, type AttemptOutcome } from './attempt-runner.js';
import type { Executor } from './executors/types.js';
import type { JobSecrets } from './job-secrets.js';
import type { JobRecord, JobStore } from './job-store.js';
import { attemptDir } from './log-source.js';
import type { AttemptMeter, JobMetering } from './metering.js';
import { afterAttempt, type Backoff } from './retry-policy.js';
import type { WorkspaceStore } from './workspaces.js';

export interface AttemptDeps {
  store: JobStore;
  jobsDir: string;
  workspaces: WorkspaceStore;
  secrets: JobSecrets;
  /** SIGTERM → SIGKILL grace for cancel, timeout and shutdown. */
  killGraceMs: number;
  backoff: Backoff;
  logger: Logger;
  job(id: string): JobRecord;
  /** A job's row changed: publish it. */
  emit(job: JobRecord): void;
  /** A running attempt's log grew. */
  logGrew(id: string): void;
  /** An attempt's outcome is recorded: the queue may start another. */
  ended(): void;
  /** Build minutes of an enrolled host (billing): each attempt metered from start to end. */
  metering?: JobMetering;
}

interface ActiveAttempt {
  attempt: RunningAttempt;
  executor: Executor;
  log: AttemptLog;
  /** Resolves once the outcome is recorded and published. */
  settled: Promise<void>;
  meter: AttemptMeter | undefined;
}

/**
 * The attempts running now, from start to recorded outcome: directory, log, rows and timings,
 * the executor's run, and what the outcome means for the job (retry policy). The queue
 * (JobService) decides which job starts when; this decides nothing about order.
 */
export class RunningAttempts {
  private readonly active = new Map<string, ActiveAttempt>();

  constructor(private readonly deps: AttemptDeps) {}

  get size(): number {
    return this.active.size;
  }

  /** Attempts running now on one executor (each has its own concurrency limit). */
  on(executor: Executor): number {
    return [...this.active.values()].filter((a) => a.executor === executor).length;
  }

  /** The running attempt's number and live log, if the job has one running. */
  live(id: string): { number: number; log: AttemptLog } | undefined {
    const active = this.active.get(id);
    return active && { number: active.attempt.number, log: active.log };
  }

  /** Stops the job's running attempt, if any, and resolves once its outcome is recorded. */
  async stop(id: string, reason: 'cancelled' | 'requeue'): Promise<boolean> {
    const active = this.active.get(id);
    if (!active) return false;
    await active.attempt.stop(reason, this.deps.killGraceMs);
    await active.settled;
    return true;
  }

  /** Waits up to `graceMs` for every attempt to end, then puts the rest back in the queue. */
  async drain(graceMs: number): Promise<void> {
    const running = () => Promise.all([...this.active.values()].map((a) => a.settled));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([running(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await Promise.all([...this.active.values()].map((a) => a.attempt.stop('requeue', this.deps.killGraceMs)));
    await running();
  }

  /** Starts the job's next attempt: its directory and log, its rows, then the executor. */
  start(job: JobRecord, executor: Executor): void {
    const number = job.attempt + 1;
    const dir = attemptDir(this.deps.jobsDir, job.id, number);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const log = AttemptLog.open(join(dir, 'log'), () => this.deps.logGrew(job.id));
    const now = Date.now();
    const timings: Record<string, number> = { queued: now - job.queuedAt };
    this.deps.store.insertAttempt(job.id, {
      number,
      state: 'preparing',
      executor: executor.name,
      exit_code: null,
      started_at: now,
      finished_at: null,
      log_size: 0,
      timings,
      error: null,
    });
    this.deps.emit(
      this.deps.store.updateJob(job.id, {
        state: 'preparing',
        attempt: number,
        exitCode: null,
        error: null,
        finishedAt: null,
      }),
    );
    const attempt = new RunningAttempt({
      job,
      number,
      executor,
      workdir: join(dir, 'work'),
      artifactsDir: join(dir, 'artifacts'),
      workspace: job.spec.workspace === null ? undefined : this.deps.workspaces.path(job.spec.workspace),
      log,
      secretEnv: () => this.deps.secrets.open(job.id),
      killGraceMs: this.deps.killGraceMs,
      timing: (phase, ms) => {
        timings[phase] = ms;
        this.deps.store.updateAttempt(job.id, number, { timings });
      },
      checkpoint: (state) => this.deps.store.updateAttempt(job.id, number, { checkpoint: state }),
      onRunning: () => {
        this.deps.store.updateAttempt(job.id, number, { state: 'running' });
        this.deps.emit(this.deps.store.updateJob(job.id, { state: 'running' }));
      },
    });
    if (job.spec.workspace !== null) this.deps.workspaces.touch(job.spec.workspace);
    const meter = this.meterAttempt(job.id, number, now);
    const settled = attempt.finished
      .catch((error: unknown): AttemptOutcome => {
        this.deps.logger.error({ err: error, job: job.id }, 'attempt failed inside the agent');
        const message = `the agent failed running this attempt: ${toHangarError(error).message}`;
        return { state: 'failed', exitCode: null, error: message, retryable: true, artifacts: [] };
      })
      .then((outcome) => this.finish(job.id, number, outcome, dir))
      .catch((error: unknown) => {
        this.active.delete(job.id);
        this.deps.logger.error({ err: error, job: job.id }, 'could not record the end of an attempt');
      });
    this.active.set(job.id, { attempt, executor, log, settled, meter });
  }

  private meterAttempt(jobId: string, number: number, startedAt: number): AttemptMeter | undefined {
    try {
      return this.deps.metering?.attemptStarted({ jobId, number, startedAt });
    } catch (error) {
      // Admitted a moment ago; a plan that changed since is checked again at the next job.
      this.deps.logger.warn({ err: error, job: jobId }, 'could not start metering an attempt');
      return undefined;
    }
  }

  private async finish(id: string, number: number, outcome: AttemptOutcome, dir: string): Promise<void> {
    const active = this.active.get(id)!;
    active.meter?.ended(Date.now());
    active.log.dispose();
    await rm(join(dir, 'work'), { recursive: true, force: true }).catch((error: unknown) =>
      this.deps.logger.warn({ err: error, job: id }, 'could not remove a workdir'),
    );
    const now = Date.now();
    if (outcome.artifacts.length > 0) this.deps.store.insertArtifacts(id, number, outcome.artifacts);
    this.deps.store.updateAttempt(id, number, {
      state: outcome.state === 'requeued' ? 'cancelled' : outcome.state,
      exit_code: outcome.exitCode,
      finished_at: now,
      log_size: active.log.size,
      error: outcome.error,
    });
    const updated = this.deps.store.updateJob(id, afterAttempt(this.deps.job(id), outcome, now, this.deps.backoff));
    this.active.delete(id);
    this.deps.emit(updated);
    this.deps.ended();
  }
}
