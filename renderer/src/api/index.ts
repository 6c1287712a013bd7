// The renderer's only door to the core: views import from here, never from @hangar/shared's link.
export { CoreClient, badFields, describeError, type CoreApi, type CoreEventData } from './core-client.js';
export { connectToCore, isDesktop } from './transport.js';
export {
  followJobLog,
  openTerminal,
  type TerminalConnection,
  type TerminalSink,
  type TerminalStatus,
} from './terminal-connection.js';
export type {
  CoreMethod,
  CoreParams,
  CoreResult,
  HostView,
  JobInfo,
  JobDetail,
  SessionInfo,
  CloseReason,
  ListeningPort,
  PreviewView,
  AgentStatus,
  TmuxServerState,
  AccountStatus,
  BillingStatus,
  DeviceEntry,
  TaskInfo,
  TaskState,
  BackupRun,
  BackupSnapshot,
  BackupStatus,
} from '@hangar/shared';
export {
  BACKUP_INTERVAL_EXPECTED,
  describeBackupSchedule,
  formatBackupInterval,
  parseBackupInterval,
  FINAL_JOB_STATES,
  FINAL_TASK_STATES,
  PreviewPort,
  formatBytes,
  formatRoundTrip,
  visibleText,
} from '@hangar/shared';
