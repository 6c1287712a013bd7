import { z } from 'zod';
import { HostInfo } from './host.js';
import { HostAddress, HostName } from './hosts.js';
import { ArtifactInfo, JobDetail, JobId, JobInfo, JobSpec } from './jobs.js';
import { ListeningPort, PreviewInfo, PreviewLabel, PreviewPort } from './previews.js';
import {
  SessionCreateParams,
  SessionInfo,
  SessionName,
  StreamId,
  TMUX_SERVER_OK,
  TerminalSize,
  TmuxServerState,
} from './sessions.js';

/**
 * The app core's API: the one the renderer (over Electron IPC or, in web mode, a WebSocket)
 * and the CLI (in-process) use. Like the host protocol, every call is one entry here; the
 * transports carry the same frames and control messages as the link (shared/src/link).
 * How to add a call: one entry here, one handler in electron/core/src/api/.
 */

const Empty = z.object({}).strict();

/** Live load of a host (host.stats on the agent). */
export const HostStats = z.object({
  load: z.array(z.number()).length(3),
  cpus: z.number().int().positive(),
  mem_total: z.number().nonnegative(),
  mem_free: z.number().nonnegative(),
  disk_total: z.number().nonnegative(),
  disk_free: z.number().nonnegative(),
  sessions: z.number().int().nonnegative(),
  running_jobs: z.number().int().nonnegative(),
  capabilities: z.object({ tmux: z.boolean(), tart: z.boolean(), bubblewrap: z.boolean() }),
  /** Whether its tmux server took sessions with it when it went away (see TmuxServerState). */
  tmux: TmuxServerState.default(TMUX_SERVER_OK),
});
export type HostStats = z.infer<typeof HostStats>;

export const HostStatus = z.enum(['online', 'connecting', 'offline']);

/** What the UI sees of a host: never its keys. */
export const HostView = z.object({
  name: HostName,
  address: z.string(),
  embedded: z.boolean(),
  status: HostStatus,
  info: HostInfo.nullable(),
  stats: HostStats.nullable(),
  /** Why it is offline, in words, when it is. */
  error: z.string().nullable(),
});
export type HostView = z.infer<typeof HostView>;

export const HostRef = z.object({ host: HostName });

export const TerminalId = z.string().min(1).max(64);

export const TerminalStatusEvent = z.object({
  terminal_id: TerminalId,
  status: z.enum(['attached', 'reconnecting', 'resumed', 'skipped']),
});

/** A preview as the UI sees it: the host's record, and where this computer serves it, if it does. */
export const PreviewView = PreviewInfo.extend({
  /** http://localhost:<port>/ while this core forwards it, else null. */
  local_url: z.string().nullable(),
});
export type PreviewView = z.infer<typeof PreviewView>;

const PreviewRef = z.object({ host: HostName, port: PreviewPort });

export const CORE_PROCEDURES = {
  'hosts.list': { params: Empty, result: z.object({ hosts: z.array(HostView) }) },
  'hosts.add': {
    params: z.object({ name: HostName, address: HostAddress, code: z.string().min(1).max(32) }),
    result: z.object({ host: HostView }),
  },
  'hosts.rename': { params: z.object({ name: HostName, new_name: HostName }), result: Empty },
  'hosts.remove': { params: z.object({ name: HostName }), result: Empty },

  'sessions.list': {
    params: z.object({ host: HostName.optional() }),
    result: z.object({
      hosts: z.array(
        z.object({
          host: HostName,
          sessions: z.array(SessionInfo),
          error: z.string().nullable(),
          /** null when the host could not be asked (error says why). */
          tmux: TmuxServerState.nullable(),
        }),
      ),
    }),
  },
  'sessions.create': { params: z.object({ host: HostName, session: SessionCreateParams }), result: SessionInfo },
  'sessions.kill': { params: z.object({ host: HostName, name: SessionName }), result: Empty },

  /**
   * Opens a terminal on the stream the caller opened (`stream_id`): output flows core → UI,
   * input UI → core. The stream closes with {code: 'session_ended', exit_code} or
   * 'session_killed' or 'error'; `terminal.status` events tell reconnecting/resumed/skipped.
   */
  'terminal.open': {
    params: z.object({ host: HostName, session: SessionName, ...TerminalSize, stream_id: StreamId }),
    result: z.object({ terminal_id: TerminalId }),
  },
  'terminal.resize': { params: z.object({ terminal_id: TerminalId, ...TerminalSize }), result: Empty },
  'terminal.close': { params: z.object({ terminal_id: TerminalId }), result: Empty },

  'jobs.list': {
    params: z.object({ host: HostName.optional() }),
    result: z.object({ jobs: z.array(z.object({ host: HostName, job: JobInfo })) }),
  },
  'jobs.get': { params: z.object({ host: HostName, id: JobId }), result: JobDetail },
  'jobs.submit': {
    params: z.object({
      host: HostName,
      spec: JobSpec,
      /** A folder on this computer to pack and upload as the workspace (optional). */
      folder: z.string().min(1).max(4096).optional(),
    }),
    result: z.object({ host: HostName, job: JobInfo }),
  },
  /** Log bytes on the caller's stream, closed with {code: 'log_end', exit_code} when final. */
  'jobs.logs': {
    params: z.object({
      host: HostName,
      id: JobId,
      from: z.number().int().nonnegative().default(0),
      follow: z.boolean().default(true),
      stream_id: StreamId,
    }),
    result: z.object({ attempt: z.number().int().positive() }),
  },
  'jobs.cancel': { params: z.object({ host: HostName, id: JobId }), result: JobInfo },
  'jobs.retry': { params: z.object({ host: HostName, id: JobId }), result: JobInfo },
  /** Downloads (sha256-checked) into the user's download folder; returns where. */
  'artifacts.download': {
    params: z.object({ host: HostName, id: JobId, path: z.string().min(1).max(4096) }),
    result: z.object({ saved_to: z.string(), artifact: ArtifactInfo }),
  },

  'previews.list': {
    params: z.object({ host: HostName.optional() }),
    result: z.object({
      hosts: z.array(
        z.object({
          host: HostName,
          previews: z.array(PreviewView),
          listening: z.array(ListeningPort),
          error: z.string().nullable(),
        }),
      ),
    }),
  },
  'previews.add': {
    params: z.object({ host: HostName, port: PreviewPort, label: PreviewLabel.optional() }),
    result: PreviewView,
  },
  /** Unregisters it on the host: its open connections are cut there, and this computer stops serving it. */
  'previews.remove': { params: PreviewRef, result: Empty },
  /**
   * Serves the preview on this computer (same port as on the host when free, else any) until
   * previews.close. Idempotent: an open preview answers with its address. Remembered: the next
   * UI core (npm start, hangar ui, the window) serves it again on the same port when free.
   */
  'previews.open': {
    params: PreviewRef.extend({ local_port: PreviewPort.optional() }),
    result: z.object({ url: z.string(), local_port: PreviewPort }),
  },
  'previews.close': { params: PreviewRef, result: Empty },
} as const;

export type CoreMethod = keyof typeof CORE_PROCEDURES;
export type CoreParams<M extends CoreMethod> = z.input<(typeof CORE_PROCEDURES)[M]['params']>;
export type CoreResult<M extends CoreMethod> = z.output<(typeof CORE_PROCEDURES)[M]['result']>;

export function isCoreMethod(method: string): method is CoreMethod {
  return Object.prototype.hasOwnProperty.call(CORE_PROCEDURES, method);
}

/** Events the core publishes to every UI: name → data schema. */
export const CORE_EVENTS = {
  'hosts.changed': z.object({ hosts: z.array(HostView) }),
  'job.updated': z.object({ host: HostName, job: JobInfo }),
  /** A host's sessions, pushed when they change (the list as sessions.list would give it). */
  'sessions.changed': z.object({ host: HostName, sessions: z.array(SessionInfo), tmux: TmuxServerState }),
  /** A session rang its bell: it may be waiting for the user (the core also shows a notification). */
  'session.bell': z.object({ host: HostName, name: SessionName }),
  'terminal.status': TerminalStatusEvent,
  /**
   * A host's previews changed (added, removed, opened or closed here), or a port there started or
   * stopped listening: its previews and candidates as previews.list would give them.
   */
  'previews.changed': z.object({ host: HostName, previews: z.array(PreviewView), listening: z.array(ListeningPort) }),
} as const;
export type CoreEvent = keyof typeof CORE_EVENTS;
