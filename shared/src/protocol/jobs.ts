import { z } from 'zod';
import { EnvName, EnvValue, StreamId, argumentText } from './sessions.js';

export const JOB_STATES = [
  'queued',
  'preparing',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'timed_out',
  'lost',
] as const;
export const JobState = z.enum(JOB_STATES);
export type JobState = z.infer<typeof JobState>;
export const FINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'timed_out', 'lost'];

export const Executor = z.enum(['shell', 'sandbox', 'tart']);
export type Executor = z.infer<typeof Executor>;

export const JobId = z.string().regex(/^j-[a-z0-9]{8,32}$/, { error: 'expected a job id like j-1a2b3c4d' });
/** sha256 of the workspace tarball, lowercase hex. */
export const ContentHash = z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a sha256 hex digest' });

/** A glob relative to the job's working directory: no absolute paths, no `..`. */
export const ArtifactGlob = z
  .string()
  .min(1)
  .max(512)
  .refine((g) => !g.startsWith('/') && !/^[a-zA-Z]:/.test(g), { error: 'artifact globs are relative to the workdir' })
  .refine((g) => !g.split(/[\\/]/).includes('..'), { error: 'artifact globs may not contain ".."' });

/**
 * What a job may use (sandbox executor; shell and tart do not apply them). Omitted: the host's
 * defaults, which always include a process and a memory limit.
 */
export const JobLimits = z.object({
  cpus: z
    .number({ error: 'expected a number of CPUs like 2 or 0.5' })
    .positive({ error: 'expected more than 0 CPUs' })
    .max(256, { error: 'at most 256 CPUs' })
    .optional(),
  memory_mb: z
    .number({ error: 'expected a number of MiB' })
    .int({ error: 'expected a whole number of MiB' })
    .min(16, { error: 'at least 16 MiB: a shell and its tools need that much' })
    .max(1024 * 1024, { error: 'at most 1 TiB (1048576 MiB)' })
    .optional(),
  /** Processes and threads together (pids.max, or RLIMIT_NPROC). */
  pids: z
    .number({ error: 'expected a number of processes' })
    .int({ error: 'expected a whole number of processes' })
    .min(16, { error: 'at least 16 processes: the sandbox, a shell and what it runs need a few' })
    // Linux's own ceiling on process ids (PID_MAX_LIMIT on 64-bit).
    .max(4_194_304, { error: 'at most 4194304 processes, the most Linux has' })
    .optional(),
});
export type JobLimits = z.infer<typeof JobLimits>;

/**
 * A sandboxed job's process limit when it names none. A parallel build with its compilers, a JVM
 * build with its daemon and test forks, or Chromium under test stays within a few hundred to a
 * thousand (threads count too); a fork bomb stops here instead of filling the host's process table.
 */
export const DEFAULT_JOB_PIDS = 2048;

/**
 * A job's network. `outbound` (what `default` means): a network namespace of its own with user-mode
 * networking (sandbox: slirp4netns), so it reaches the internet but not the host's loopback
 * services nor its abstract Unix sockets. `none`: loopback only. `host`: the host's own network
 * namespace, every service on its loopback included (trusted jobs only).
 */
export const JobNetwork = z.enum(['default', 'outbound', 'none', 'host'], {
  error: (issue) => `unknown network ${JSON.stringify(issue.input)}: expected outbound (the default), none or host`,
});
export type JobNetwork = z.output<typeof JobNetwork>;

const JobSpecFields = z.object({
  /** Run with `sh -c` in the workdir. */
  command: argumentText(64 * 1024).min(1),
  /** Omitted: the host's default (tart on macOS with Tart, sandbox on Linux with bubblewrap, else shell). */
  executor: Executor.optional(),
  workspace: ContentHash.nullable().default(null),
  timeout_ms: z
    .number()
    .int()
    .min(1000)
    .max(7 * 24 * 3600 * 1000)
    .default(60 * 60 * 1000),
  retries: z.number().int().min(0).max(10).default(0),
  artifacts: z.array(ArtifactGlob).max(64).default([]),
  env: z.record(EnvName, EnvValue).default({}),
  /**
   * Environment for the job whose values are secrets: stored encrypted on the host, given to the
   * job's process when it runs, and never returned (JobDetail lists their names only) nor logged.
   */
  secret_env: z.record(EnvName, EnvValue).default({}),
  network: JobNetwork.default('default'),
  limits: JobLimits.default({}),
  /** Tart only: the base image to clone (default from the agent's config). */
  image: z.string().min(1).max(256).optional(),
});

export const JobSpec = JobSpecFields.refine(
  (spec) => !Object.keys(spec.secret_env).some((name) => Object.hasOwn(spec.env, name)),
  { error: 'a variable is either in env or in secret_env, not both', path: ['secret_env'] },
);
export type JobSpecInput = z.input<typeof JobSpec>;
export type JobSpec = z.output<typeof JobSpec>;

/** A job's spec as the host tells it (job.get): a secret's value never leaves the host, only its name. */
export const JobSpecView = JobSpecFields.omit({ secret_env: true }).extend({
  secret_env_names: z.array(EnvName).default([]),
});
export type JobSpecView = z.output<typeof JobSpecView>;

/** Milliseconds per phase of an attempt; a phase an executor does not have is absent. */
export const AttemptTimings = z.object({
  queued: z.number().optional(),
  clone: z.number().optional(),
  boot: z.number().optional(),
  ready: z.number().optional(),
  run: z.number().optional(),
  collect: z.number().optional(),
  delete: z.number().optional(),
});
export type AttemptTimings = z.infer<typeof AttemptTimings>;

export const AttemptInfo = z.object({
  number: z.number().int().positive(),
  state: JobState,
  exit_code: z.number().int().nullable(),
  started_at: z.number().int().nullable(),
  finished_at: z.number().int().nullable(),
  log_size: z.number().int().nonnegative(),
  timings: AttemptTimings,
  error: z.string().nullable(),
});
export type AttemptInfo = z.infer<typeof AttemptInfo>;

export const ArtifactInfo = z.object({
  /** Relative to the workdir, forward slashes. */
  path: z.string(),
  size: z.number().int().nonnegative(),
  sha256: ContentHash,
});
export type ArtifactInfo = z.infer<typeof ArtifactInfo>;

export const JobInfo = z.object({
  id: JobId,
  state: JobState,
  command: z.string(),
  executor: Executor,
  created_at: z.number().int(),
  finished_at: z.number().int().nullable(),
  exit_code: z.number().int().nullable(),
  /** Number of the current (or last) attempt; 0 while never started. */
  attempt: z.number().int().nonnegative(),
  retries: z.number().int().nonnegative(),
  error: z.string().nullable(),
});
export type JobInfo = z.infer<typeof JobInfo>;

export const JobDetail = JobInfo.extend({
  spec: JobSpecView,
  attempts: z.array(AttemptInfo),
  artifacts: z.array(ArtifactInfo),
});
export type JobDetail = z.infer<typeof JobDetail>;

export const JobIdParams = z.object({ id: JobId });

export const JobListParams = z.object({
  limit: z.number().int().min(1).max(1000).default(50),
  states: z.array(JobState).optional(),
});

/**
 * How a log stream is encoded. 'deflate': the stream carries log blocks (see log-blocks.ts),
 * compressed where that pays; 'none': the log's bytes as they are, stream offsets = log offsets.
 */
export const LogCompression = z.enum(['none', 'deflate']);
export type LogCompression = z.infer<typeof LogCompression>;

export const JobLogsParams = z.object({
  id: JobId,
  /** Default: the latest attempt. */
  attempt: z.number().int().positive().optional(),
  /** Byte offset to start from (what the client already has). */
  from: z.number().int().nonnegative().default(0),
  /** Keep streaming until the attempt ends; without it the stream ends at the current end of the log. */
  follow: z.boolean().default(false),
  compression: LogCompression.default('none'),
  stream_id: StreamId,
});
/**
 * The log stream carries bytes with their offsets; it closes with {code: 'log_end', exit_code}
 * once the attempt's log is complete (or, without follow, at the current end).
 */
export const JobLogsResult = z.object({
  attempt: z.number().int().positive(),
  from: z.number().int().nonnegative(),
  compression: LogCompression.default('none'),
});

export const WorkspaceHasParams = z.object({ hash: ContentHash });
export const WorkspaceHasResult = z.object({ present: z.boolean() });

/** Client then writes exactly `size` bytes on the stream and closes it; then calls workspace.commit. */
export const WorkspaceUploadParams = z.object({
  hash: ContentHash,
  size: z.number().int().nonnegative(),
  stream_id: StreamId,
});
export const WorkspaceCommitParams = z.object({ hash: ContentHash });
export const WorkspaceCommitResult = z.object({ present: z.literal(true), size: z.number().int().nonnegative() });

export const ArtifactListResult = z.object({ artifacts: z.array(ArtifactInfo) });
/** The agent sends the file's bytes on the stream, then closes it with code 'artifact_end'. */
export const ArtifactFetchParams = z.object({
  id: JobId,
  path: z.string().min(1).max(4096),
  /** Byte offset to start from (what the client already has, after a dropped link). */
  from: z.number().int().nonnegative().default(0),
  stream_id: StreamId,
});
export const ArtifactFetchResult = ArtifactInfo;

/** Event `job.updated`, sent to every connected client when a job changes state. */
export const JobUpdatedEvent = z.object({ job: JobInfo });
