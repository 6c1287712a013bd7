import { z } from 'zod';
import { HostInfo } from './host.js';
import { HostStats } from './core-api.js';
import {
  SessionAttachParams,
  SessionAttachResult,
  SessionBellEvent,
  SessionCreateParams,
  SessionDetachParams,
  SessionInfo,
  SessionKillParams,
  SessionListResult,
  SessionsChangedEvent,
  TerminalResizeParams,
} from './sessions.js';
import {
  ArtifactFetchParams,
  ArtifactFetchResult,
  ArtifactListResult,
  JobDetail,
  JobIdParams,
  JobInfo,
  JobListParams,
  JobLogsParams,
  JobLogsResult,
  JobSpec,
  JobUpdatedEvent,
  WorkspaceCommitParams,
  WorkspaceCommitResult,
  WorkspaceHasParams,
  WorkspaceHasResult,
  WorkspaceUploadParams,
} from './jobs.js';
import {
  PreviewAddParams,
  PreviewConnectParams,
  PreviewConnectResult,
  PreviewInfo,
  PreviewListResult,
  PreviewPortParams,
  PreviewWatchParams,
  PreviewsChangedEvent,
} from './previews.js';
import { LaneGrantResult } from './lanes.js';

import {
  BackupProgress,
  BackupRestoreParams,
  BackupRun,
  BackupSettings,
  BackupSnapshot,
  BackupStatus,
  BackupUpdatedEvent,
} from './backups.js';
import { TaskClaimParams, TaskIdParams, TaskInfo, TaskListResult, TaskUpdatedEvent } from './tasks.js';

const Empty = z.object({}).strict();

/**
 * Every call a client may make to a host agent over the link's control stream.
 * How to add a call: add one entry here (params + result schema), then one handler in the
 * agent's procedure table (host-agent/src/peer/procedures.ts, or a capability's own table beside it). The client gets types for free.
 */
export const HOST_PROCEDURES = {
  'host.info': { params: Empty, result: HostInfo },
  'host.stats': { params: Empty, result: HostStats },
  'session.create': { params: SessionCreateParams, result: SessionInfo },
  'session.list': { params: Empty, result: SessionListResult },
  'session.kill': { params: SessionKillParams, result: Empty },
  'session.attach': { params: SessionAttachParams, result: SessionAttachResult },
  'session.detach': { params: SessionDetachParams, result: Empty },
  'terminal.resize': { params: TerminalResizeParams, result: Empty },
  /** Asks tmux to repaint this client's screen (after the client drew something of its own over it). */
  'terminal.redraw': { params: SessionDetachParams, result: Empty },
  'workspace.has': { params: WorkspaceHasParams, result: WorkspaceHasResult },
  'workspace.upload': { params: WorkspaceUploadParams, result: Empty },
  'workspace.commit': { params: WorkspaceCommitParams, result: WorkspaceCommitResult },
  'job.submit': { params: JobSpec, result: JobInfo },
  'job.list': { params: JobListParams, result: z.object({ jobs: z.array(JobInfo) }) },
  'job.get': { params: JobIdParams, result: JobDetail },
  'job.logs': { params: JobLogsParams, result: JobLogsResult },
  'job.cancel': { params: JobIdParams, result: JobInfo },
  'job.retry': { params: JobIdParams, result: JobInfo },
  'artifact.list': { params: JobIdParams, result: ArtifactListResult },
  'artifact.fetch': { params: ArtifactFetchParams, result: ArtifactFetchResult },
  'preview.list': { params: Empty, result: PreviewListResult },
  'preview.add': { params: PreviewAddParams, result: PreviewInfo },
  'preview.remove': { params: PreviewPortParams, result: Empty },
  'preview.connect': { params: PreviewConnectParams, result: PreviewConnectResult },
  /**
   * This link watches the host's listening ports (`watch: true`) or no longer does: previews.changed
   * then also comes when a dev server starts or stops. The agent looks only while a link watches.
   */
  'preview.watch': { params: PreviewWatchParams, result: Empty },
  /**
   * A grant for lanes beside this link (lane/PROTOCOL.md): kept by the agent until the link
   * closes, at most 4 per link (a fifth forgets the oldest). Only over a direct TCP link.
   */
  'lane.grant': { params: Empty, result: LaneGrantResult },
  'task.claim': { params: TaskClaimParams, result: TaskInfo },
  'task.list': { params: Empty, result: TaskListResult },
  'task.get': { params: TaskIdParams, result: TaskInfo },
  'task.cancel': { params: TaskIdParams, result: TaskInfo },
  /** What is backed up, where, how often and what is kept; answers with the status it makes. */
  'backup.set': { params: BackupSettings, result: BackupStatus },
  'backup.status': { params: Empty, result: BackupStatus },
  /**
   * Starts a backup now and answers at once with its run (`running`); one already running is
   * joined (the same run). `backup.progress` and `backup.updated` events follow it.
   */
  'backup.now': { params: Empty, result: BackupRun },
  'backup.snapshots': { params: Empty, result: z.object({ snapshots: z.array(BackupSnapshot) }) },
  /** Starts a restore into a new or empty directory and answers at once with its run, as backup.now. */
  'backup.restore': { params: BackupRestoreParams, result: BackupRun },
} as const;

export type HostMethod = keyof typeof HOST_PROCEDURES;
export type HostParams<M extends HostMethod> = z.input<(typeof HOST_PROCEDURES)[M]['params']>;
export type HostResult<M extends HostMethod> = z.output<(typeof HOST_PROCEDURES)[M]['result']>;

/**
 * Events an agent publishes to its connected clients: name → data schema. The agent's publish
 * checks data against it before sending; the client's ControlClient checks it again on receipt,
 * so a listener only ever sees data of this shape. How to add one: an entry here, a publish.
 */
export const HOST_EVENTS = {
  /** A job changed state (sent to every connected client). */
  'job.updated': JobUpdatedEvent,
  /** The host's sessions after one was made, ended, or gained or lost a client. */
  'sessions.changed': SessionsChangedEvent,
  /** A session rang the terminal bell (an agent waiting for an answer, a build done). */
  'session.bell': SessionBellEvent,
  /** A preview was added or removed, or a port started or stopped listening: the whole picture. */
  'previews.changed': PreviewsChangedEvent,
  /** The host's info changed while linked (an agent update became available, say): all of it. */
  'host.info': HostInfo,
  /** An agent task on the host changed state (claimed, running, waiting for the user, ended). */
  'task.updated': TaskUpdatedEvent,
  /** How far the running backup has got (at most a few a second). */
  'backup.progress': BackupProgress,
  /** A backup or restore started or ended. */
  'backup.updated': BackupUpdatedEvent,
} as const;
export type HostEvent = keyof typeof HOST_EVENTS;
/** How a component of the agent sends an event to every connected client. */
export type PublishHostEvent = <K extends HostEvent>(event: K, data: z.input<(typeof HOST_EVENTS)[K]>) => void;
