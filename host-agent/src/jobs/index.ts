export {
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_MAX_JOBS,
  JobService,
  type JobServiceOptions,
} from './job-service.js';
export { openLogSync, streamLog } from './log-sender.js';
export { openArtifactCopy, streamFile } from './artifacts.js';
export { ShellExecutor } from './executors/shell.js';
export type { Executor } from './executors/types.js';
export { DEFAULT_RETENTION, type RetentionPolicy } from './retention.js';
export { DEFAULT_WORKSPACE_LIMIT } from './workspaces.js';
export type { AttemptMeter, JobMetering } from './metering.js';
