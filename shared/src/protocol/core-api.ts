import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { ACCOUNT_EVENTS, ACCOUNT_PROCEDURES, AccountHostView } from './core-account.js';
import { HostInfo } from './host.js';
import { HostAddress, HostName } from './hosts.js';
import { ArtifactInfo, JobDetail, JobId, JobInfo, JobListParams, JobSpec } from './jobs.js';
import { ListeningPort, PreviewInfo, PreviewLabel, PreviewPort } from './previews.js';
import { NewTaskSpec, TaskInfo, TaskRef } from './tasks.js';
import {
  BackupProgress,
  BackupRestoreParams,
  BackupRun,
  BackupSettings,
  BackupSnapshot,
  BackupStatus,
} from './backups.js';
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
 * The app core's API: the one door for the renderer (over Electron IPC or, in web mode, a
 * WebSocket) and the hangar command (in-process; a local socket later). Like the host protocol,
 * every call is one entry here; the transports carry the same frames and control messages as the
 * link (shared/src/link), and CoreApiClient is the one client.
 * How to add a call: one entry here, one handler in electron/core/src/api/handlers.ts, and a
 * hangar command that calls it (or a reason in electron/cli/src/procedures.ts why none does).
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
export type HostStatus = z.infer<typeof HostStatus>;

/**
 * What a client sees of a host: its record and its live state. The pins are the host's public
 * key and certificate fingerprint (public, shown so a user can compare them with the host's);
 * this device's private key never leaves the core.
 */
export const HostView = z.object({
  name: HostName,
  address: z.string(),
  embedded: z.boolean(),
  agent_key: z.string(),
  cert_fingerprint: z.string(),
  added_at: z.number().int(),
  status: HostStatus,
  info: HostInfo.nullable(),
  stats: HostStats.nullable(),
  /** Why it is offline, in words, when it is. */
  error: z.string().nullable(),
  /** When this computer last saw it up (its link, or the account's relay); null: never. */
  last_seen: z.number().int().nullable(),
  /**
   * How this computer reaches it: `direct` at an address typed or published on its network,
   * `tailnet` at a Tailscale address it published, `relay` known only through the account's relay
   * so far (linked at an address it published the first time it is used), `p2p` over a hole-punched
   * WebRTC link, `turn` over WebRTC through a TURN server (still end-to-end encrypted), `relayed`
   * through the relay because neither an address nor WebRTC linked (a splice: the relay carries
   * the end-to-end encrypted link's ciphertext, PROTOCOL.md "Relayed links").
   */
  via: z.enum(['direct', 'tailnet', 'relay', 'p2p', 'turn', 'relayed']),
  /**
   * Its keys are the account relay's word, not proved to this computer: it was approved without a
   * code (`hangar devices approve --yes`), relay/PROTOCOL.md "More devices: the approval code".
   */
  keys_from_relay: z.boolean().optional(),
  /** The link's round trip in ms, where known (ICE's estimate on a WebRTC link). */
  rtt_ms: z.number().nonnegative().nullable().optional(),
  /** The account host it is (matched by its key), when it is enrolled in this computer's account. */
  account: AccountHostView.nullable(),
});
export type HostView = z.infer<typeof HostView>;

export const HostRef = z.object({ host: HostName });

export const TerminalId = z.string().min(1).max(64);

/** What a terminal's link is doing: attached, lost (reconnecting), back (resumed, or skipped past the replay window). */
export const TerminalStatus = z.enum(['attached', 'reconnecting', 'resumed', 'skipped']);
export type TerminalStatus = z.infer<typeof TerminalStatus>;

export const TerminalStatusEvent = z.object({ terminal_id: TerminalId, status: TerminalStatus });

export { TERMINAL_CLOSE } from './terminal-close.js';

/** Why a host in a list over every host is missing from it: the error, as a value. */
export const HostFailure = z.object({ code: z.enum(ERROR_CODES), message: z.string() });
export type HostFailure = z.infer<typeof HostFailure>;

/**
 * A path on the computer the core runs on. Absolute only: the hangar command resolves it against
 * its own working directory, which a core serving it over a socket does not share.
 */
export const LocalPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\0'), { error: 'a path has no NUL bytes' })
  .refine((p) => p.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(p) || p.startsWith('\\\\'), {
    error: 'expected an absolute path on this computer',
  });

/** Names one long call's `progress` events (uploads, downloads), chosen by the caller. */
export const OperationId = z.string().min(1).max(64);

const JobRef = z.object({
  /** The host that has the job; absent: ask every paired host (job ids are unique across hosts). */
  host: HostName.optional(),
  id: JobId,
});
const JobOnHost = z.object({ host: HostName, job: JobInfo });
const JobDetailOnHost = z.object({ host: HostName, job: JobDetail });
/** An artifact written on this computer. */
export const DownloadedArtifact = ArtifactInfo.extend({ file: z.string() });
export type DownloadedArtifact = z.infer<typeof DownloadedArtifact>;

/** A preview as the UI sees it: the host's record, and where this computer serves it, if it does. */
export const PreviewView = PreviewInfo.extend({
  /** http://localhost:<port>/ while this core forwards it, else null. */
  local_url: z.string().nullable(),
});
export type PreviewView = z.infer<typeof PreviewView>;

const PreviewRef = z.object({ host: HostName, port: PreviewPort });

export const CORE_PROCEDURES = {
  /**
   * Every host: those paired on this computer and those of the signed-in account, one entry when
   * both (the same key). `probe`: link to each paired host now (at most a few seconds) to say
   * whether it is up; a window's core has them linked already.
   */
  'hosts.list': {
    params: z.object({ probe: z.boolean().default(false) }).strict(),
    result: z.object({ hosts: z.array(HostView) }),
  },
  'hosts.add': {
    params: z.object({ name: HostName, address: HostAddress, code: z.string().min(1).max(32) }),
    result: z.object({ host: HostView }),
  },
  'hosts.rename': { params: z.object({ name: HostName, new_name: HostName }), result: Empty },
  /** Forgets the host here; a host of the account is removed from the account too (`from_account`). */
  'hosts.remove': { params: z.object({ name: HostName }), result: z.object({ from_account: z.boolean() }) },

  'sessions.list': {
    params: z.object({ host: HostName.optional() }),
    result: z.object({
      hosts: z.array(
        z.object({
          host: HostName,
          sessions: z.array(SessionInfo),
          error: HostFailure.nullable(),
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
  /** Asks tmux to repaint the screen (after the client drew a notice of its own over it). */
  'terminal.redraw': { params: z.object({ terminal_id: TerminalId }), result: Empty },
  'terminal.close': { params: z.object({ terminal_id: TerminalId }), result: Empty },
  /**
   * The host's attachment behind an open terminal and the host's offset of the first byte its
   * stream carried: with them the hangar command (this user, with this device's key) resumes the
   * attachment on a link of its own from exactly the next byte it lacks, and the keystrokes no
   * longer cross this core. The terminal here then ends with 'superseded'.
   */
  'terminal.attachment': {
    params: z.object({ terminal_id: TerminalId }),
    result: z.object({ attachment_id: z.string().min(1).max(64), offset: z.number().int().nonnegative() }),
  },

  /** Jobs of one host, or of every paired host (newest first on each); an unreachable host is a value. */
  'jobs.list': {
    params: z.object({ host: HostName.optional(), limit: JobListParams.shape.limit }),
    result: z.object({
      hosts: z.array(z.object({ host: HostName, jobs: z.array(JobInfo), error: HostFailure.nullable() })),
    }),
  },
  'jobs.get': { params: JobRef, result: JobDetailOnHost },
  /**
   * With `folder`: packs it (git-tracked and untracked-not-ignored files; the whole folder outside
   * git, never the home directory or `/`; an empty folder is an empty workspace), uploads it unless
   * the host has it (`progress` events for `op_id`), and runs the job on it. Without: the job runs
   * on spec.workspace, by default none (an empty directory, as `hangar run --no-workspace`).
   */
  'jobs.submit': {
    params: z.object({
      host: HostName,
      spec: JobSpec,
      folder: LocalPath.optional(),
      op_id: OperationId.optional(),
    }),
    result: JobOnHost.extend({
      /** The workspace sent with `folder`; `skipped` when the host already had it. */
      upload: z.object({ hash: z.string(), size: z.number().int().nonnegative(), skipped: z.boolean() }).nullable(),
    }),
  },
  /**
   * Log bytes on the caller's stream (opened with BULK_STREAM_WINDOW: both ends share one window),
   * closed with {code: 'log_end', exit_code} when the attempt (or, with through_retries, the job) ends. `jobs.log_attempt` says where each attempt's bytes
   * start on the stream; `jobs.log_link` when the host link drops and comes back.
   */
  'jobs.logs': {
    params: z.object({
      host: HostName,
      id: JobId,
      /** Default: the latest attempt. */
      attempt: z.number().int().positive().optional(),
      from: z.number().int().nonnegative().default(0),
      follow: z.boolean().default(true),
      /** While following, go on to the next attempt when the job is retried, until it is final. */
      through_retries: z.boolean().default(false),
      stream_id: StreamId,
    }),
    result: z.object({ attempt: z.number().int().positive() }),
  },
  /** Answers once the job is in a final state (as long as that takes). */
  'jobs.wait': { params: JobRef, result: JobDetailOnHost },
  'jobs.cancel': { params: JobRef, result: JobOnHost },
  'jobs.retry': { params: JobRef, result: JobOnHost },
  /**
   * Downloads a job's artifacts (all, or the one at `path`), each sha256-checked before it is
   * renamed into place, into `dir` (the hangar command's choice) or the user's Downloads/<job>.
   * `progress` events for `op_id`.
   */
  'artifacts.download': {
    params: z.object({
      host: HostName,
      id: JobId,
      path: z.string().min(1).max(4096).optional(),
      dir: LocalPath.optional(),
      op_id: OperationId.optional(),
    }),
    result: z.object({ dir: z.string(), files: z.array(DownloadedArtifact) }),
  },

  'previews.list': {
    params: z.object({ host: HostName.optional() }),
    result: z.object({
      hosts: z.array(
        z.object({
          host: HostName,
          previews: z.array(PreviewView),
          listening: z.array(ListeningPort),
          error: HostFailure.nullable(),
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
   * previews.close. Idempotent: an open preview answers with its address. Remembered (the
   * default): the next UI core (npm start, hangar ui, the window) serves it again on the same port
   * when free. `remember: false` (hangar preview open, like ssh -L): served only while the calling
   * connection lives, unless another opened it too.
   */
  'previews.open': {
    params: PreviewRef.extend({ local_port: PreviewPort.optional(), remember: z.boolean().default(true) }),
    result: z.object({ url: z.string(), local_port: PreviewPort }),
  },
  'previews.close': { params: PreviewRef, result: Empty },
  /**
   * This client looks at the hosts' listening ports (the previews view is shown): `watch: true`
   * until `watch: false` or the client goes. While any client watches, every linked host looks
   * for dev servers that start or stop and previews.changed tells them; while none does, hosts
   * do not look (previews.list still lists what listens, when asked).
   */
  'previews.watch': { params: z.object({ watch: z.boolean() }).strict(), result: Empty },

  /**
   * Queues an agent task in this computer's queue and hands it at once to the first linked host
   * that fits (by name order; `host`: only that one). No host fits now: it stays queued with the
   * reason (which hosts lack what, or cannot be reached), and a running core tries again when
   * hosts come online or end tasks.
   */
  'tasks.add': {
    params: z.object({ spec: NewTaskSpec, host: HostName.optional() }),
    result: z.object({ task: TaskInfo }),
  },
  /** This computer's queue (tasks no host took yet) and every host's tasks; an unreachable host is a value. */
  'tasks.list': {
    params: z.object({}),
    result: z.object({
      queued: z.array(TaskInfo),
      hosts: z.array(
        z.object({
          host: HostName,
          tasks: z.array(TaskInfo),
          /** Older tasks the host left out of its listing (its byte bound). */
          truncated: z.number().int().nonnegative().optional(),
          error: HostFailure.nullable(),
        }),
      ),
    }),
  },
  'tasks.get': { params: TaskRef, result: z.object({ task: TaskInfo }) },
  /** A queued task leaves the queue; a claimed one's session is ended on its host. */
  'tasks.cancel': { params: TaskRef, result: z.object({ task: TaskInfo }) },

  /** What a host backs up, where, how often and what it keeps (stored on the host). */
  'backups.set': { params: z.object({ host: HostName, settings: BackupSettings }), result: BackupStatus },
  'backups.status': { params: z.object({ host: HostName }), result: BackupStatus },
  /**
   * Backs the host up now (or joins the backup running there) and answers when it ended, with its
   * run: ok (snapshot id, sizes) or error (why, what to do). `backup.progress` events meanwhile.
   */
  'backups.now': { params: z.object({ host: HostName }), result: z.object({ run: BackupRun }) },
  'backups.list': { params: z.object({ host: HostName }), result: z.object({ snapshots: z.array(BackupSnapshot) }) },
  /** Restores a snapshot into a new or empty directory on the host; answers when it ended, as backups.now. */
  'backups.restore': {
    params: BackupRestoreParams.extend({ host: HostName }),
    result: z.object({ run: BackupRun }),
  },

  ...ACCOUNT_PROCEDURES,
} as const;

export type CoreMethod = keyof typeof CORE_PROCEDURES;
export type CoreParams<M extends CoreMethod> = z.input<(typeof CORE_PROCEDURES)[M]['params']>;
export type CoreResult<M extends CoreMethod> = z.output<(typeof CORE_PROCEDURES)[M]['result']>;
/** The params a handler gets: parsed by the table, defaults applied. */
export type CoreParsedParams<M extends CoreMethod> = z.output<(typeof CORE_PROCEDURES)[M]['params']>;

/**
 * Events the core publishes: name → data schema. Most go to every client; terminal.status,
 * jobs.log_* and progress only to the connection whose call they are about.
 */
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
  /** A jobs.logs stream: the bytes of `attempt` start at `stream_offset` (sent before those bytes). */
  'jobs.log_attempt': z.object({
    stream_id: StreamId,
    attempt: z.number().int().positive(),
    stream_offset: z.number().int().nonnegative(),
  }),
  /**
   * A jobs.logs stream's host link dropped (`reconnecting`) or came back and the log goes on
   * (`resumed`), after the bytes before `stream_offset` (an older core sends none: at once).
   */
  'jobs.log_link': z.object({
    stream_id: StreamId,
    status: z.enum(['reconnecting', 'resumed']),
    stream_offset: z.number().int().nonnegative().optional(),
  }),
  /** How far a call with this `op_id` has got (bytes of an upload or a download). */
  progress: z.object({
    op_id: OperationId,
    label: z.string().max(200),
    done: z.number().nonnegative(),
    total: z.number().nonnegative(),
  }),
  /** A task changed: queued here (host null), or on a host (claimed, running, needs you, ended). */
  'task.updated': z.object({ task: TaskInfo }),
  /** A backup the calling connection waits for (backups.now) has got this far. */
  'backup.progress': BackupProgress.extend({ host: HostName }),
  /** The host accepted the backup or restore the calling connection waits for: it runs now. */
  'backup.started': z.object({ host: HostName, run: BackupRun }),
  ...ACCOUNT_EVENTS,
} as const;
export type CoreEvent = keyof typeof CORE_EVENTS;
