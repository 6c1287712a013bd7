import {
  ArtifactInfo,
  AttemptInfo,
  AttemptTimings,
  Executor,
  JobInfo,
  JobSpec,
  JobState,
  type JobDetail,
  type JobSpecView,
} from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';

/** A job row as stored, parsed with the wire schemas so disk and wire agree on every shape. */
export interface JobRecord {
  seq: number;
  id: string;
  spec: JobSpec;
  executor: Executor;
  state: JobState;
  device: string;
  createdAt: number;
  queuedAt: number;
  notBefore: number;
  finishedAt: number | null;
  exitCode: number | null;
  attempt: number;
  failures: number;
  error: string | null;
}

export interface AttemptRecord extends AttemptInfo {
  jobId: string;
  executor: Executor;
  checkpoint: Record<string, unknown> | null;
}

const JobRow = z.object({
  seq: z.number().int(),
  id: z.string(),
  spec: z.string(),
  executor: Executor,
  state: JobState,
  device: z.string(),
  created_at: z.number().int(),
  queued_at: z.number().int(),
  not_before: z.number().int(),
  finished_at: z.number().int().nullable(),
  exit_code: z.number().int().nullable(),
  attempt: z.number().int(),
  failures: z.number().int(),
  error: z.string().nullable(),
});

const LatestArtifactsRow = z.object({ attempt: z.number().int().nullable() });
const SecretNameRow = z.object({ name: z.string() });
const FinishedJobSizeRow = z.object({ id: z.string(), finishedAt: z.number().int(), bytes: z.number().int() });

const AttemptRow = z.object({
  job_id: z.string(),
  number: z.number().int(),
  state: JobState,
  executor: Executor,
  exit_code: z.number().int().nullable(),
  started_at: z.number().int().nullable(),
  finished_at: z.number().int().nullable(),
  log_size: z.number().int(),
  timings: z.string(),
  checkpoint: z.string().nullable(),
  error: z.string().nullable(),
});

function toJob(row: unknown): JobRecord {
  const r = JobRow.parse(row);
  return {
    seq: r.seq,
    id: r.id,
    spec: JobSpec.parse(JSON.parse(r.spec)),
    executor: r.executor,
    state: r.state,
    device: r.device,
    createdAt: r.created_at,
    queuedAt: r.queued_at,
    notBefore: r.not_before,
    finishedAt: r.finished_at,
    exitCode: r.exit_code,
    attempt: r.attempt,
    failures: r.failures,
    error: r.error,
  };
}

function toAttempt(row: unknown): AttemptRecord {
  const r = AttemptRow.parse(row);
  return {
    jobId: r.job_id,
    number: r.number,
    state: r.state,
    executor: r.executor,
    exit_code: r.exit_code,
    started_at: r.started_at,
    finished_at: r.finished_at,
    log_size: r.log_size,
    timings: AttemptTimings.parse(JSON.parse(r.timings)),
    checkpoint: r.checkpoint === null ? null : z.record(z.string(), z.unknown()).parse(JSON.parse(r.checkpoint)),
    error: r.error,
  };
}

export function jobInfo(job: JobRecord): JobInfo {
  return {
    id: job.id,
    state: job.state,
    command: job.spec.command,
    executor: job.executor,
    created_at: job.createdAt,
    finished_at: job.finishedAt,
    exit_code: job.exitCode,
    attempt: job.attempt,
    retries: job.spec.retries,
    error: job.error,
  };
}

export type JobPatch = Partial<Omit<JobRecord, 'id' | 'seq' | 'spec' | 'device' | 'createdAt' | 'executor'>>;
type AttemptPatch = Partial<
  Pick<AttemptRecord, 'state' | 'exit_code' | 'finished_at' | 'log_size' | 'timings' | 'checkpoint' | 'error'>
>;

const JOB_COLUMNS: Record<keyof JobPatch, string> = {
  state: 'state',
  queuedAt: 'queued_at',
  notBefore: 'not_before',
  finishedAt: 'finished_at',
  exitCode: 'exit_code',
  attempt: 'attempt',
  failures: 'failures',
  error: 'error',
};

/** SQL for jobs, attempts and artifacts. Synchronous (better-sqlite3): each call is one transaction. */
export class JobStore {
  constructor(private readonly db: Database.Database) {}

  /** The spec is stored without its secret values (JobSecrets keeps those, sealed). */
  insertJob(job: Omit<JobRecord, 'seq'>): JobRecord {
    const { secret_env: _secrets, ...spec } = job.spec;
    this.db
      .prepare(
        `INSERT INTO jobs (id, spec, executor, state, device, created_at, queued_at, not_before, attempt, failures)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        job.id,
        JSON.stringify(spec),
        job.executor,
        job.state,
        job.device,
        job.createdAt,
        job.queuedAt,
        job.notBefore,
        job.attempt,
        job.failures,
      );
    return this.job(job.id)!;
  }

  job(id: string): JobRecord | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id);
    return row === undefined ? undefined : toJob(row);
  }

  /** Newest first. */
  jobs(limit: number, states?: readonly JobState[]): JobRecord[] {
    const rows =
      states === undefined
        ? this.db.prepare('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?').all(limit)
        : this.db
            .prepare(`SELECT * FROM jobs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq DESC LIMIT ?`)
            .all(JSON.stringify(states), limit);
    return rows.map(toJob);
  }

  /** Queued jobs in FIFO order. */
  queued(): JobRecord[] {
    return this.db.prepare(`SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq`).all().map(toJob);
  }

  jobsInStates(states: readonly JobState[]): JobRecord[] {
    return this.db
      .prepare(`SELECT * FROM jobs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq`)
      .all(JSON.stringify(states))
      .map(toJob);
  }

  updateJob(id: string, patch: JobPatch): JobRecord {
    const keys = Object.keys(patch) as (keyof JobPatch)[];
    if (keys.length > 0) {
      const sets = keys.map((key) => `${JOB_COLUMNS[key]} = ?`).join(', ');
      this.db.prepare(`UPDATE jobs SET ${sets} WHERE id = ?`).run(...keys.map((key) => patch[key] ?? null), id);
    }
    return this.job(id)!;
  }

  /** Moves a job to the back of the queue (a manual retry waits behind what was submitted before it). */
  moveToBack(id: string): void {
    this.db.prepare('UPDATE jobs SET seq = (SELECT max(seq) + 1 FROM jobs) WHERE id = ?').run(id);
  }

  deleteJob(id: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM job_secrets WHERE job_id = ?').run(id);
      this.db.prepare('DELETE FROM job_artifacts WHERE job_id = ?').run(id);
      this.db.prepare('DELETE FROM job_attempts WHERE job_id = ?').run(id);
      this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id);
    })();
  }

  insertAttempt(jobId: string, attempt: Omit<AttemptRecord, 'jobId' | 'checkpoint'>): void {
    this.db
      .prepare(
        `INSERT INTO job_attempts (job_id, number, state, executor, exit_code, started_at, finished_at, log_size, timings, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        jobId,
        attempt.number,
        attempt.state,
        attempt.executor,
        attempt.exit_code,
        attempt.started_at,
        attempt.finished_at,
        attempt.log_size,
        JSON.stringify(attempt.timings),
        attempt.error,
      );
  }

  updateAttempt(jobId: string, number: number, patch: AttemptPatch): void {
    const entries = Object.entries(patch).map(([key, value]): [string, unknown] =>
      key === 'timings' || key === 'checkpoint' ? [key, value === null ? null : JSON.stringify(value)] : [key, value],
    );
    if (entries.length === 0) return;
    const sets = entries.map(([key]) => `${key} = ?`).join(', ');
    this.db
      .prepare(`UPDATE job_attempts SET ${sets} WHERE job_id = ? AND number = ?`)
      .run(...entries.map(([, value]) => value ?? null), jobId, number);
  }

  attempts(jobId: string): AttemptRecord[] {
    return this.db.prepare('SELECT * FROM job_attempts WHERE job_id = ? ORDER BY number').all(jobId).map(toAttempt);
  }

  attempt(jobId: string, number: number): AttemptRecord | undefined {
    const row = this.db.prepare('SELECT * FROM job_attempts WHERE job_id = ? AND number = ?').get(jobId, number);
    return row === undefined ? undefined : toAttempt(row);
  }

  /** Attempts a crash interrupted: still preparing or running in the database. */
  unfinishedAttempts(): AttemptRecord[] {
    return this.db
      .prepare(`SELECT * FROM job_attempts WHERE state IN ('preparing', 'running') ORDER BY job_id, number`)
      .all()
      .map(toAttempt);
  }

  insertArtifacts(jobId: string, attempt: number, artifacts: readonly ArtifactInfo[]): void {
    const insert = this.db.prepare(
      'INSERT OR REPLACE INTO job_artifacts (job_id, attempt, path, size, sha256) VALUES (?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      for (const a of artifacts) insert.run(jobId, attempt, a.path, a.size, a.sha256);
    })();
  }

  /** Artifacts of the job's latest attempt that recorded any. */
  artifacts(jobId: string): { attempt: number; artifacts: ArtifactInfo[] } {
    const latest = LatestArtifactsRow.parse(
      this.db.prepare('SELECT max(attempt) AS attempt FROM job_artifacts WHERE job_id = ?').get(jobId),
    );
    if (latest.attempt === null) return { attempt: 0, artifacts: [] };
    const rows = this.db
      .prepare('SELECT path, size, sha256 FROM job_artifacts WHERE job_id = ? AND attempt = ? ORDER BY path')
      .all(jobId, latest.attempt);
    return { attempt: latest.attempt, artifacts: rows.map((row) => ArtifactInfo.parse(row)) };
  }

  /** The names of a job's secrets, sorted: all that a listing shows of them. */
  secretNames(jobId: string): string[] {
    const rows = this.db.prepare('SELECT name FROM job_secrets WHERE job_id = ? ORDER BY name').all(jobId);
    return rows.map((row) => SecretNameRow.parse(row).name);
  }

  detail(job: JobRecord): JobDetail {
    const attempts = this.attempts(job.id).map(({ jobId: _j, executor: _e, checkpoint: _c, ...info }) => info);
    const { secret_env: _secrets, ...spec } = job.spec;
    const view: JobSpecView = { ...spec, secret_env_names: this.secretNames(job.id) };
    return { ...jobInfo(job), spec: view, attempts, artifacts: this.artifacts(job.id).artifacts };
  }

  /** Bytes a finished job holds on disk (logs and artifacts), for retention. */
  finishedJobSizes(): z.infer<typeof FinishedJobSizeRow>[] {
    const rows = this.db
      .prepare(
        `SELECT j.id AS id, j.finished_at AS finishedAt,
           coalesce((SELECT sum(log_size) FROM job_attempts a WHERE a.job_id = j.id), 0) +
           coalesce((SELECT sum(size) FROM job_artifacts r WHERE r.job_id = j.id), 0) AS bytes
         FROM jobs j WHERE j.finished_at IS NOT NULL AND j.state IN ('succeeded','failed','cancelled','timed_out','lost')
         ORDER BY j.finished_at`,
      )
      .all();
    return rows.map((row) => FinishedJobSizeRow.parse(row));
  }
}
