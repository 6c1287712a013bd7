import {
  Emitter,
  FINAL_JOB_STATES,
  HangarError,
  toHangarError,
  type ArtifactInfo,
  type Disposable,
  type JobDetail,
  type JobInfo,
  type JobSpec,
  type JobState,
  type PublishHostEvent,
} from '@hangar/shared';
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LogSource } from './log-sender.js';
import { RunningAttempts } from './running-attempts.js';
import { ExecutorChoice } from './executor-choice.js';
import { JobSecrets, secretKeyPath } from './job-secrets.js';
import type { Executor } from './executors/types.js';
import { JobStore, jobInfo, type JobRecord } from './job-store.js';
import { attemptDir, logSourceFor } from './log-source.js';
import { recoverUnfinished } from './recovery.js';
import type { JobMetering } from './metering.js';
import { DEFAULT_BACKOFF, type Backoff } from './retry-policy.js';
import { DEFAULT_RETENTION, prune, type RetentionPolicy } from './retention.js';
import { DEFAULT_WORKSPACE_LIMIT, WorkspaceStore } from './workspaces.js';

export interface JobServiceOptions {
  dataDir: string;
  db: Database.Database;
  /** Owned by the service from here on (disposed with it). */
  executors: readonly Executor[];
  publish: PublishHostEvent;
  logger: Logger;
  /** Attempts running at once on this host. */
  maxJobs?: number;
  /** SIGTERM → SIGKILL grace for cancel and timeout. */
  killGraceMs?: number;
  retryBackoff?: Backoff;
  workspaceLimit?: number;
  retention?: RetentionPolicy;
  /** Billing: refuses build jobs the account's plan does not allow, and counts their minutes. */
  metering?: JobMetering;
}

export const DEFAULT_MAX_JOBS = 2;
export const DEFAULT_KILL_GRACE_MS = 10_000;
export const DEFAULT_DRAIN_GRACE_MS = 30_000;

/**
 * The jobs capability: a FIFO queue in the agent's SQLite, attempts run through executors
 * (RunningAttempts, running-attempts.ts), logs and artifacts on disk under
 * `<data>/jobs/<id>/<attempt>/`, workspaces under `<data>/workspaces/`. Every state change is
 * published as `job.updated`. This file is the queue: what starts when, cancel, retry, reads.
 */
export class JobService implements Disposable {
  readonly workspaces: WorkspaceStore;
  private readonly store: JobStore;
  private readonly secrets: JobSecrets;
  private readonly jobsDir: string;
  private readonly executors: ExecutorChoice;
  private readonly attempts: RunningAttempts;
  private readonly changes = new Map<string, Emitter<void>>();
  private readonly maxJobs: number;
  private readonly killGraceMs: number;
  private readonly backoff: Backoff;
  private readonly retention: RetentionPolicy;
  private stopped = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private pruning: Promise<void> | undefined;
  /** A prune asked for while one ran: it runs once that one is done (one for all such asks). */
  private pruneAgain: Promise<void> | undefined;

  private constructor(private readonly options: JobServiceOptions) {
    this.store = new JobStore(options.db);
    this.secrets = new JobSecrets(options.db, secretKeyPath(options.dataDir), options.logger);
    this.jobsDir = join(options.dataDir, 'jobs');
    mkdirSync(this.jobsDir, { recursive: true, mode: 0o700 });
    this.workspaces = new WorkspaceStore(
      join(options.dataDir, 'workspaces'),
      options.db,
      options.workspaceLimit ?? DEFAULT_WORKSPACE_LIMIT,
    );
    this.executors = new ExecutorChoice(options.executors);
    this.maxJobs = options.maxJobs ?? DEFAULT_MAX_JOBS;
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.backoff = options.retryBackoff ?? DEFAULT_BACKOFF;
    this.retention = options.retention ?? DEFAULT_RETENTION;
    this.attempts = new RunningAttempts({
      store: this.store,
      jobsDir: this.jobsDir,
      workspaces: this.workspaces,
      secrets: this.secrets,
      killGraceMs: this.killGraceMs,
      backoff: this.backoff,
      logger: options.logger,
      ...(options.metering ? { metering: options.metering } : {}),
      job: (id) => this.job(id),
      emit: (job) => this.emit(job),
      logGrew: (id) => this.changes.get(id)?.fire(),
      ended: () => {
        this.pump();
        if (!this.stopped)
          void this.prune().catch((error: unknown) => this.options.logger.warn({ err: error }, 'prune failed'));
      },
    });
  }

  /** Recovers what a crash left (attempts marked lost, leftovers killed), prunes, starts the queue. */
  static async start(options: JobServiceOptions): Promise<JobService> {
    const service = new JobService(options);
    await recoverUnfinished({
      store: service.store,
      executors: service.executors.all,
      jobsDir: service.jobsDir,
      backoff: service.backoff,
      logger: options.logger,
    });
    await service.prune();
    service.pump();
    return service;
  }

  async submit(spec: JobSpec, device: string): Promise<JobInfo> {
    this.options.metering?.admit();
    const executor = await this.executors.choose(spec.executor);
    if (spec.workspace !== null && !this.workspaces.has(spec.workspace)) {
      throw new HangarError('E_WORKSPACE_MISSING', `no workspace ${spec.workspace} on this host; upload it first`);
    }
    const now = Date.now();
    const id = `j-${randomBytes(8).toString('hex')}`;
    // The job and its sealed secrets commit together: no job without them, no orphaned secrets.
    const job = this.options.db.transaction(() => {
      const inserted = this.store.insertJob({
        id,
        spec,
        executor: executor.name,
        state: 'queued',
        device,
        createdAt: now,
        queuedAt: now,
        notBefore: 0,
        finishedAt: null,
        exitCode: null,
        attempt: 0,
        failures: 0,
        error: null,
      });
      this.secrets.store(id, spec.secret_env);
      return inserted;
    })();
    this.emit(job);
    this.pump();
    return jobInfo(job);
  }

  list(limit: number, states?: readonly JobState[]): JobInfo[] {
    return this.store.jobs(limit, states).map(jobInfo);
  }

  get(id: string): JobDetail {
    const detail = this.store.detail(this.job(id));
    const live = this.attempts.live(id);
    for (const attempt of detail.attempts) {
      if (live && attempt.number === live.number) attempt.log_size = live.log.size;
    }
    return detail;
  }

  /** Stops a queued or running job; resolves with its final state. */
  async cancel(id: string): Promise<JobInfo> {
    const job = this.job(id);
    if (FINAL_JOB_STATES.includes(job.state)) {
      throw new HangarError('E_JOB_STATE', `job ${id} has already ended (${job.state}); nothing to cancel`);
    }
    if (!(await this.attempts.stop(id, 'cancelled'))) {
      this.emit(this.store.updateJob(id, { state: 'cancelled', finishedAt: Date.now(), error: 'cancelled' }));
    }
    return jobInfo(this.job(id));
  }

  /** Runs a finished job again (a new attempt, with its retries budget afresh), behind what is queued. */
  async retry(id: string): Promise<JobInfo> {
    const job = this.job(id);
    if (!FINAL_JOB_STATES.includes(job.state)) {
      throw new HangarError('E_JOB_STATE', `job ${id} is ${job.state}; only a finished job can be retried`);
    }
    this.options.metering?.admit();
    this.store.moveToBack(id);
    const updated = this.store.updateJob(id, {
      state: 'queued',
      failures: 0,
      notBefore: 0,
      queuedAt: Date.now(),
      finishedAt: null,
      exitCode: null,
      error: null,
    });
    this.emit(updated);
    this.pump();
    return jobInfo(updated);
  }

  /** The log of an attempt (default: the latest, or the first one a queued job will get). */
  logs(id: string, attempt?: number): { attempt: number; size: number; source: LogSource } {
    const job = this.job(id);
    const number = attempt ?? Math.max(job.attempt, 1);
    // A job cancelled while queued has no attempt: its first never ran (an empty, final log), so
    // a follower that asked for it while the job was queued ends, not fails.
    const neverRan = number === 1 && job.attempt === 0;
    if (number > job.attempt + 1 || (number === job.attempt + 1 && FINAL_JOB_STATES.includes(job.state) && !neverRan)) {
      throw new HangarError('E_NOT_FOUND', `job ${id} has no attempt ${number} (latest: ${job.attempt})`);
    }
    const source = logSourceFor({
      jobId: id,
      number,
      jobsDir: this.jobsDir,
      store: this.store,
      live: () => {
        const live = this.attempts.live(id);
        return live && live.number === number ? live.log : undefined;
      },
      onChange: (listener) => this.onChange(id, listener),
    });
    return { attempt: number, size: source.state().size, source };
  }

  artifacts(id: string): ArtifactInfo[] {
    this.job(id);
    return this.store.artifacts(id).artifacts;
  }

  /**
   * Where a recorded artifact's bytes are (`dir`: the attempt's artifacts folder, `file` in it);
   * anything not recorded is refused. Open it with openArtifactCopy.
   */
  artifactFile(id: string, path: string): { info: ArtifactInfo; dir: string; file: string } {
    this.job(id);
    const { attempt, artifacts } = this.store.artifacts(id);
    const info = artifacts.find((a) => a.path === path);
    if (!info) {
      throw new HangarError('E_NOT_FOUND', `job ${id} has no artifact "${path}"; see hangar artifacts ${id}`);
    }
    const dir = join(attemptDir(this.jobsDir, id, attempt), 'artifacts');
    return { info, dir, file: join(dir, path) };
  }

  /**
   * Agent shutdown: start nothing new, give running attempts `graceMs` to finish, then stop the
   * rest and put their jobs back in the queue (not counted as failures) for the next start.
   */
  async drain(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.attempts.drain(graceMs);
    await (this.pruneAgain ?? this.pruning)?.catch((error: unknown) =>
      this.options.logger.warn({ err: error }, 'prune failed'),
    );
  }

  async dispose(): Promise<void> {
    await this.drain(0);
    for (const emitter of this.changes.values()) emitter.dispose();
    await this.executors.dispose();
  }

  async prune(): Promise<void> {
    if (this.pruning) {
      // The running prune read what to remove when it started: a job that ended since (its
      // `ended` asked for this prune) would stay until the next one, past the byte limit.
      this.pruneAgain ??= this.pruning
        .catch(() => undefined)
        .then(() => {
          this.pruneAgain = undefined;
          return this.prune();
        });
      return this.pruneAgain;
    }
    const inUse = new Set(
      this.store
        .jobsInStates(['queued', 'preparing', 'running'])
        .map((job) => job.spec.workspace)
        .filter((hash): hash is string => hash !== null),
    );
    this.pruning = prune({
      jobs: this.store,
      workspaces: this.workspaces,
      jobsDir: this.jobsDir,
      policy: this.retention,
      inUse,
      now: Date.now(),
    })
      .then((removed) => {
        if (removed.jobs.length + removed.workspaces.length > 0) this.options.logger.info(removed, 'retention pruned');
      })
      .finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  private job(id: string): JobRecord {
    const job = this.store.job(id);
    if (!job) throw new HangarError('E_JOB_NOT_FOUND', `no job ${id} on this host; see hangar jobs`);
    return job;
  }

  private emit(job: JobRecord): void {
    this.options.publish('job.updated', { job: jobInfo(job) });
    this.changes.get(job.id)?.fire();
  }

  private onChange(id: string, listener: () => void): Disposable {
    let emitter = this.changes.get(id);
    if (!emitter) this.changes.set(id, (emitter = new Emitter<void>()));
    const subscription = emitter.event(listener);
    return {
      dispose: () => {
        subscription.dispose();
        if (!emitter.hasListeners) this.changes.delete(id);
      },
    };
  }

  /** Starts queued jobs, oldest first, while the host and each executor have room. */
  private pump(): void {
    if (this.stopped) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    const now = Date.now();
    let nextWake = Number.POSITIVE_INFINITY;
    for (const job of this.store.queued()) {
      if (this.attempts.size >= this.maxJobs) break;
      if (job.notBefore > now) {
        nextWake = Math.min(nextWake, job.notBefore);
        continue;
      }
      const executor = this.executors.get(job.executor);
      if (!executor) {
        this.emit(
          this.store.updateJob(job.id, {
            state: 'failed',
            finishedAt: now,
            error: `this agent no longer has the ${job.executor} executor`,
          }),
        );
        continue;
      }
      if (this.attempts.on(executor) >= executor.maxConcurrency) continue;
      if (!this.admitted(job, now)) continue;
      this.attempts.start(job, executor);
    }
    if (nextWake !== Number.POSITIVE_INFINITY) {
      this.wakeTimer = setTimeout(() => this.pump(), Math.max(0, nextWake - Date.now()));
    }
  }

  /** A queued job whose plan no longer allows it (a trial that ended meanwhile) fails saying why. */
  private admitted(job: JobRecord, now: number): boolean {
    try {
      this.options.metering?.admit();
      return true;
    } catch (error) {
      const refusal = toHangarError(error);
      this.options.logger.info({ job: job.id, code: refusal.code }, `job refused: ${refusal.message}`);
      this.emit(this.store.updateJob(job.id, { state: 'failed', finishedAt: now, error: refusal.message }));
      return false;
    }
  }
}
