import { constants, readFileSync } from 'node:fs';
import { chmod, lstat, mkdir, open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AgentStatus,
  HangarError,
  SessionCreateParams,
  type Disposable,
  type SessionInfo,
  type TmuxServerState,
} from '@hangar/shared';
import type { Logger } from 'pino';
import { makeFileAnew } from '../file-watch.js';
import { SizeDriver } from './size-driver.js';
import { PtyAttachment, type Attachment, type AttachmentEnd } from './attachment.js';
import {
  SESSION_PREFIX,
  Tmux,
  detectDefaultTerminal,
  detectTmuxVersion,
  escapeCommandArg,
  isNoServer,
  serverConfig,
  TMUX_MAX_COMMAND_BYTES,
  tmuxCommandBytes,
  tmuxSocketName,
} from './tmux.js';
import { OUTPUT_LOG, OutputLogRotation } from './output-log.js';
import {
  AgentHookEvents,
  hookSettings,
  isClaudeCode,
  withHookSettings,
  type AgentStatusChange,
} from './agent-hooks.js';
import { attentionHook, SessionAttention } from './session-attention.js';
import { changeHooks, SessionChanges } from './session-changes.js';
import { ifMissing, resolveWorkdir, writeInstructions } from './workdir.js';
import { assertProgramRuns } from './program-check.js';
import { TmuxServerWatch } from './tmux-loss.js';
import { LIST_FORMAT, encodeOption, newSessionCommands, parseSessionList } from './session-records.js';

export type { Attachment, AttachmentEnd } from './attachment.js';
export { tmuxSocketName } from './tmux.js';

export interface SessionManagerOptions {
  /** The agent's data dir; per-session files live in <dataDir>/sessions/<name>/. */
  dataDir: string;
  maxSessions?: number;
  replayLimitBytes?: number;
  replayWindowMs?: number;
  liveWindowBytes?: number;
  /** A session's output.log is rotated past this size (checked every outputLogCheckMs). */
  outputLogMaxBytes?: number;
  outputLogCheckMs?: number;
  logger?: Logger;
  /** The tmux executable; default "tmux" from PATH. */
  tmuxPath?: string;
  /**
   * Gives a process of ours the short CPU slice of a keystroke's path (the native relay's
   * preferLatency; none without it): the tmux server, which reads each key from the attachment's
   * pty and writes its echo there itself (a tmux client hands its tty to the server and sleeps).
   * Undefined, or why not.
   */
  preferLatency?: (pid: number) => string | undefined;
}

/**
 * How often the agent looks whether its tmux server, last seen running sessions, still lives (a
 * signal 0 to its pid: no tmux run). No hook tells of a killed server; this way its loss is pushed
 * to clients as any other change, instead of waiting for someone to list (issue 18: a running core
 * answers listings from what the agent pushed). Only while no terminal is attached: an attached
 * terminal's tmux client ends with its server, and its end makes the same look at once (it woke
 * the agent of a person typing once per 5 keys for nothing). And only while the server was last
 * seen running sessions: an idle agent without sessions has nothing to look at.
 */
const SERVER_CHECK_MS = 1000;

/** Parsed params (defaults applied): z.output<typeof SessionCreateParams>. */
type CreateParams = ReturnType<typeof SessionCreateParams.parse>;

export class SessionManager implements Disposable {
  private readonly attachments = new Map<string, PtyAttachment>();
  /** Sessions being killed through kill(): their attachments end with reason "killed". */
  private readonly killing = new Set<string>();
  /** create() is check-then-act against the limit; one at a time keeps the limit exact. */
  private createQueue: Promise<unknown> = Promise.resolve();
  /**
   * Session names promised to a caller that makes them later (a task claimed while git makes its
   * worktree): each counts against --max-sessions until it exists or its reservation is released.
   */
  private readonly reserved = new Set<string>();
  private disposed = false;
  private serverCheck: NodeJS.Timeout | undefined;
  private readonly sizing: SizeDriver;
  private readonly outputLogs: OutputLogRotation;
  private readonly changes: SessionChanges;
  /** The session list changed (made, ended, killed, a client attached or left): the new list. */
  readonly onChanged: SessionChanges['onChanged'];
  private readonly attention: SessionAttention;
  /** A session rang the terminal bell (an agent waiting for an answer, say): its name. */
  readonly onBell: SessionAttention['onBell'];
  private readonly agentHooks: AgentHookEvents;
  /** A coding agent's hook changed its status (with the event: a task ends at its agent's `Stop`). */
  readonly onAgentStatus: AgentHookEvents['onStatus'];
  private agentStatusWrites: Promise<void> = Promise.resolve();
  /** Whether the tmux server went away with sessions on it (reported by tmuxState()). */
  private readonly serverWatch: TmuxServerWatch;
  /** The tmux server last given the short slice (preferLatency), so that a listing asks once. */
  private latencyServerPid: number | undefined;

  private constructor(
    private readonly tmux: Tmux,
    private readonly version: string,
    private readonly sessionsDir: string,
    files: { changedFile: string; bellFile: string; agentEventsFile: string },
    private readonly options: Required<Omit<SessionManagerOptions, 'logger' | 'tmuxPath' | 'preferLatency'>> & {
      logger: Logger | undefined;
      preferLatency: SessionManagerOptions['preferLatency'];
    },
  ) {
    this.sizing = new SizeDriver(tmux);
    this.serverWatch = new TmuxServerWatch(sessionsDir, options.logger);
    this.changes = new SessionChanges(files.changedFile, () => this.list(), options.logger);
    this.onChanged = this.changes.onChanged;
    this.attention = new SessionAttention(files.bellFile, options.logger);
    this.onBell = this.attention.onBell;
    this.agentHooks = new AgentHookEvents(files.agentEventsFile, options.logger);
    this.onAgentStatus = this.agentHooks.onStatus;
    // One at a time, in order: a later status must not be overwritten by an earlier one still on its way.
    this.agentHooks.onStatus((change) => {
      this.agentStatusWrites = this.agentStatusWrites.then(() => this.recordAgentStatus(change));
    });
    this.outputLogs = new OutputLogRotation({
      tmux,
      sessionsDir,
      sessions: async () =>
        (await this.list()).filter((s) => s.alive).map((s) => ({ name: s.name, target: `${SESSION_PREFIX}${s.name}` })),
      maxBytes: options.outputLogMaxBytes,
      checkMs: options.outputLogCheckMs,
      logger: options.logger,
    });
  }

  static async start(options: SessionManagerOptions): Promise<SessionManager> {
    const binary = options.tmuxPath ?? 'tmux';
    const version = await detectTmuxVersion(binary);
    const sessionsDir = join(options.dataDir, 'sessions');
    await mkdir(sessionsDir, { recursive: true, mode: 0o700 });
    await chmod(sessionsDir, 0o700);
    const configFile = join(sessionsDir, 'tmux.conf');
    const changedFile = join(sessionsDir, 'changed');
    const bellFile = join(sessionsDir, 'bells');
    const agentEventsFile = join(sessionsDir, 'agent-events');
    const hooks = [...changeHooks(changedFile), ...attentionHook(bellFile)];
    const config = serverConfig(await detectDefaultTerminal(), hooks);
    // Anew, not through a symlink planted there (that wrote the config over the file it points to).
    makeFileAnew(configFile, config);
    const tmux = new Tmux(binary, tmuxSocketName(options.dataDir), configFile);
    const manager = new SessionManager(
      tmux,
      version,
      sessionsDir,
      { changedFile, bellFile, agentEventsFile },
      {
        dataDir: options.dataDir,
        maxSessions: options.maxSessions ?? 5,
        replayLimitBytes: options.replayLimitBytes ?? 4 * 1024 * 1024,
        replayWindowMs: options.replayWindowMs ?? 60_000,
        liveWindowBytes: options.liveWindowBytes ?? 256 * 1024,
        outputLogMaxBytes: options.outputLogMaxBytes ?? 64 * 1024 * 1024,
        outputLogCheckMs: options.outputLogCheckMs ?? 60_000,
        logger: options.logger,
        preferLatency: options.preferLatency,
      },
    );
    // Sessions outlive the agent: whatever a previous agent started on our socket is ours again
    // (and so is the output they logged while no agent was looking). A server that is already
    // running (a previous agent's, or one the service manager keeps in a unit of its own so that
    // an agent restart cannot kill it) read another config: this one (hooks included) applies now.
    const existing = await manager.list();
    await tmux.run(['source-file', configFile]).catch((error: unknown) => {
      if (!isNoServer(error)) throw error;
    });
    void manager.outputLogs.check();
    manager.options.logger?.info(
      { tmux: version, socket: tmux.socketName, sessions: existing.map((s) => s.name) },
      'sessions started',
    );
    return manager;
  }

  tmuxVersion(): string {
    return this.version;
  }

  /** How many sessions may run at once (serve --max-sessions). */
  get sessionLimit(): number {
    return this.options.maxSessions;
  }

  /** Whether sessions were lost with their tmux server, as of the last list(). */
  tmuxState(): TmuxServerState {
    return this.serverWatch.state();
  }

  /**
   * Holds a session slot for `name` until it is made (create() of that name uses it) or the
   * reservation is disposed: another session made meanwhile cannot take it.
   */
  reserve(name: string): Disposable {
    this.reserved.add(name);
    return { dispose: () => void this.reserved.delete(name) };
  }

  /**
   * What counts against --max-sessions: the sessions running and those reserved and not made yet
   * (but `name`'s own reservation, for its create), each count for the refusal's words.
   */
  async slotsTaken(name?: string): Promise<{ taken: number; reserved: number; sessions: SessionInfo[] }> {
    const sessions = await this.list();
    const reserved = [...this.reserved].filter((r) => r !== name && !sessions.some((s) => s.name === r)).length;
    return { taken: sessions.length + reserved, reserved, sessions };
  }

  create(params: CreateParams): Promise<SessionInfo> {
    const run = this.createQueue.then(() => this.createNow(params));
    // The caller gets the error through `run`; the queue only needs to know it settled.
    this.createQueue = run.catch(() => undefined);
    return run;
  }

  private async createNow(params: CreateParams): Promise<SessionInfo> {
    this.assertOpen();
    const { taken, reserved, sessions } = await this.slotsTaken(params.name);
    if (sessions.some((s) => s.name === params.name)) {
      throw new HangarError(
        'E_SESSION_EXISTS',
        `a session named "${params.name}" already exists; pick another name or kill it first`,
        { name: params.name },
      );
    }
    const max = this.options.maxSessions;
    if (taken >= max) {
      const coming = reserved > 0 ? ` (${reserved} of them a task’s, still being made)` : '';
      throw new HangarError(
        'E_SESSION_LIMIT',
        `this host already runs ${taken} sessions${coming}, the limit is ${max}. Kill one, or restart the agent with a higher limit: hangar-agent serve --max-sessions ${max + 5}`,
        { limit: max },
      );
    }
    const cwd = await resolveWorkdir(params.cwd);
    await assertProgramRuns(params.command[0]!, cwd, params.env?.['PATH']);

    const sessionDir = join(this.sessionsDir, params.name);
    await makeSessionDir(sessionDir);
    const exitFile = join(sessionDir, 'exit');
    // A previous session of the same name must not lend its exit status to this one.
    await rm(exitFile, { force: true });

    const target = `${SESSION_PREFIX}${params.name}`;
    const env = Object.entries(params.env ?? {}).flatMap(([key, value]) => ['-e', escapeCommandArg(`${key}=${value}`)]);
    // Claude Code reports what it does through hooks of this session's own (agent-hooks.ts).
    const agent = isClaudeCode(params.command);
    let run = params.command;
    if (agent) {
      const settingsFile = join(sessionDir, 'claude-settings.json');
      // Anew, as tmux.conf is: never written through a symlink planted there.
      makeFileAnew(settingsFile, hookSettings(params.name, this.agentHooks.file));
      run = withHookSettings(params.command, settingsFile);
    }
    // tmux (3.3) gives a new pane the PATH of the client that made it, whatever -e says: a PATH the
    // caller asked for is set again right before the command, and the command is looked up in it.
    const path = params.env?.['PATH'];
    if (path !== undefined) run = ['env', `PATH=${path}`, ...run];
    const starting: AgentStatus = { kind: 'claude-code', state: 'starting', since: Date.now(), detail: null };
    const commands = newSessionCommands({
      params,
      target,
      cwd,
      env,
      run,
      exitFile,
      changesFile: this.changes.file,
      sessionDir,
      agent: agent ? starting : null,
    });
    const bytes = tmuxCommandBytes(commands);
    if (bytes > TMUX_MAX_COMMAND_BYTES) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `the session's command, environment and working directory come to ${bytes} bytes for tmux, which takes ` +
          `at most ${TMUX_MAX_COMMAND_BYTES} (the command counts about twice); pass long values in a file instead`,
        { bytes, max_bytes: TMUX_MAX_COMMAND_BYTES },
      );
    }
    if (params.instructions !== undefined) await writeInstructions(cwd, params.instructions);
    await this.tmux.runStartingServer(commands);
    this.serverWatch.started(params.name);
    this.options.logger?.info({ session: params.name, command: params.command, cwd }, 'session created');
    const info = (await this.list()).find((s) => s.name === params.name);
    // A command that exits at once takes its session with it; report what was created anyway.
    return (
      info ?? {
        name: params.name,
        command: params.command,
        cwd,
        created_at: Date.now(),
        attached_clients: 0,
        alive: false,
        agent: agent ? starting : null,
      }
    );
  }

  /**
   * The tmux server `pid` of the listing gets the echo's short slice, if it still is a tmux server
   * of this user when asked (read just before the call): a pid freed and reused since the listing,
   * or one a server on our socket that is not tmux named, is someone else's process, and for an
   * agent running as root sched_setattr would take any process. Linux only (no slices elsewhere).
   */
  private preferTmuxServerLatency(pid: number): void {
    if (!this.options.preferLatency || process.platform !== 'linux') return;
    const why = tmuxServerOfOurs(pid) ?? this.options.preferLatency(pid);
    if (why) this.options.logger?.debug({ pid, why }, 'the tmux server keeps the default CPU slice');
  }

  async list(): Promise<SessionInfo[]> {
    const look = this.serverWatch.begin();
    let stdout: string;
    try {
      ({ stdout } = await this.tmux.run(['list-sessions', '-F', LIST_FORMAT]));
    } catch (error) {
      // The server exits with its last session; no server means no sessions, unless it took some with it.
      if (isNoServer(error)) {
        await this.serverWatch.missing(look);
        this.watchServer();
        return [];
      }
      throw error;
    }
    const { sessions, serverPid } = parseSessionList(stdout);
    if (serverPid !== undefined && serverPid !== this.latencyServerPid) {
      // A server seen for the first time (started now, or by an agent before us): once per pid.
      this.latencyServerPid = serverPid;
      this.preferTmuxServerLatency(serverPid);
    }
    await this.serverWatch.found(
      look,
      serverPid,
      sessions.map((s) => s.name),
    );
    this.watchServer();
    return sessions;
  }

  async kill(name: string): Promise<void> {
    this.assertOpen();
    const target = `${SESSION_PREFIX}${name}`;
    if (!(await this.tmux.hasSession(target))) throw notFound(name);
    this.killing.add(name);
    this.serverWatch.ending(name);
    try {
      await this.tmux.run(['kill-session', '-t', `=${target}`]);
      const ending = [...this.attachments.values()].filter((a) => a.sessionName === name).map((a) => a.closed);
      await Promise.all(ending);
    } finally {
      this.killing.delete(name);
      // The last session's close has no hook (its tmux server exits with it).
      this.changes.poke();
    }
    this.options.logger?.info({ session: name }, 'session killed');
  }

  async attach(name: string, size: { cols: number; rows: number }): Promise<Attachment> {
    this.assertOpen();
    const target = `${SESSION_PREFIX}${name}`;
    // The tmux client starts at once, beside the look that the session is there (the first screen
    // waited for the one, then the other: issue 18); a client of a session that is not there is
    // ended (it would only say so and exit) and the caller told E_SESSION_NOT_FOUND as before.
    const exists = this.tmux.hasSession(target);
    const attachment = new PtyAttachment(
      this.tmux,
      name,
      target,
      size,
      this.options,
      (detachRequested) => this.endOf(name, detachRequested),
      this.options.logger,
      this.sizing,
    );
    const there = await exists.catch((error: unknown) => {
      attachment.detach();
      throw error;
    });
    if (!there) {
      attachment.detach();
      throw notFound(name);
    }
    this.attachments.set(attachment.id, attachment);
    this.watchServer();
    // Subscribed first, so by the time anyone else hears of the end the id no longer resolves.
    attachment.onEnd(() => {
      this.attachments.delete(attachment.id);
      // Its tmux client ended: maybe with the server, which no hook reports. A look tells.
      this.changes.poke();
      this.watchServer();
    });
    this.options.logger?.info({ session: name, attachment: attachment.id }, 'attached');
    return attachment;
  }

  /**
   * Looks at the tmux server every SERVER_CHECK_MS while it was last seen running sessions and no
   * terminal is attached (see there): an agent with no sessions has no server to lose, and sleeps.
   * Called again after each listing, which is where a server (or its end) is seen.
   */
  private watchServer(): void {
    // Output logs grow while sessions run, attached or not.
    this.outputLogs.setChecking(!this.disposed && this.serverWatch.livePid !== undefined);
    if (this.disposed || this.attachments.size > 0 || this.serverWatch.livePid === undefined) {
      clearInterval(this.serverCheck);
      this.serverCheck = undefined;
      return;
    }
    if (this.serverCheck !== undefined) return;
    this.serverCheck = setInterval(() => {
      const pid = this.serverWatch.livePid;
      if (pid === undefined) return;
      try {
        process.kill(pid, 0);
      } catch {
        // ESRCH: gone; EPERM: the pid is another user's process now, so ours is gone too.
        this.changes.poke();
      }
    }, SERVER_CHECK_MS);
    this.serverCheck.unref();
  }

  /** The exit status a session's command ended with; null while it runs, or when it was killed. */
  async exitStatus(name: string): Promise<number | null> {
    const text = await readExitFile(join(this.sessionsDir, name, 'exit'));
    return text === '' ? null : Number(text);
  }

  getAttachment(id: string): Attachment | undefined {
    return this.attachments.get(id);
  }

  /** Detaches every client but leaves tmux and its sessions running: they outlive the agent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.serverCheck);
    this.serverCheck = undefined;
    this.outputLogs.dispose();
    this.changes.dispose();
    this.attention.dispose();
    this.agentHooks.dispose();
    const all = [...this.attachments.values()];
    for (const attachment of all) attachment.detach();
    await Promise.all(all.map((a) => a.closed));
  }

  private async endOf(name: string, detachRequested: boolean): Promise<AttachmentEnd> {
    if (this.killing.has(name)) return { exitCode: null, reason: 'killed' };
    if (detachRequested) return { exitCode: null, reason: 'detached' };
    // The exit file first: the wrapper writes it before the pane dies, so it answers without asking
    // a tmux server that may be exiting with its last session (has-session can fail then).
    const text = await readExitFile(join(this.sessionsDir, name, 'exit'));
    if (text !== '') return { exitCode: Number(text), reason: 'exited' };
    // No exit file: only this client left (someone ran tmux detach-client), or the session was
    // killed outside Hangar (tmux kill-session, a signal).
    if (await this.tmux.hasSession(`${SESSION_PREFIX}${name}`)) return { exitCode: null, reason: 'detached' };
    return { exitCode: null, reason: 'killed' };
  }

  /** Kept in the session's tmux options, so a restarted agent still knows it; the new list goes out. */
  private async recordAgentStatus({ session, status }: AgentStatusChange): Promise<void> {
    const target = `${SESSION_PREFIX}${session}`;
    try {
      if (this.disposed || !(await this.tmux.hasSession(target))) return;
      // '=name:' – set-option takes a pane target, where an exact session name needs the colon.
      await this.tmux.run(['set-option', '-t', `=${target}:`, '@hangar_agent', encodeOption(status)]);
      this.changes.poke();
    } catch (error) {
      this.options.logger?.warn({ err: error, session }, 'could not record the agent status');
    }
  }

  private assertOpen(): void {
    if (this.disposed) throw new HangarError('E_UNAVAILABLE', 'the session manager has shut down');
  }
}

function notFound(name: string): HangarError {
  return new HangarError(
    'E_SESSION_NOT_FOUND',
    `no session named "${name}" on this host; list its sessions with: hangar session ls <host>`,
    { name },
  );
}

/**
 * Undefined if process `pid` is a tmux server (tmux names its server's thread "tmux: server"; a
 * tmux that does not is named after its executable, which may be a wrapper's, e.g. Nix's
 * ".tmux-wrapped") of this user, or why not.
 */
function tmuxServerOfOurs(pid: number): string | undefined {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const uid = Number(/^Uid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    if (!comm.includes('tmux')) return `process ${pid} is "${comm}", not a tmux server`;
    if (uid !== process.getuid?.()) return `process ${pid} belongs to uid ${uid}, not ${process.getuid?.()}`;
    return undefined;
  } catch (error) {
    return `process ${pid}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
}

/**
 * A session's folder, where tmux and the exit wrapper write by path (`cat >> output.log`, `>
 * exit`: both follow symlinks): a directory of its own, and its output.log a file of its own. A
 * symlink planted at either (or a hard link at the log) is replaced, not followed: a session's
 * output went to the file it points to, outside the data dir too. Kept otherwise: the log of an
 * earlier session of that name goes on.
 */
async function makeSessionDir(dir: string): Promise<void> {
  const found = await lstat(dir).catch(ifMissing(undefined));
  if (found?.isDirectory() !== true) {
    if (found !== undefined) await unlink(dir); // the link itself, not what it points to
    await mkdir(dir, { recursive: true, mode: 0o700 }); // made meanwhile by a create of the same name: fine
  }
  const log = join(dir, OUTPUT_LOG);
  const logFound = await lstat(log).catch(ifMissing(undefined));
  if (logFound !== undefined && !(logFound.isFile() && logFound.nlink === 1)) makeFileAnew(log);
}

/** An exit status is a few digits: a longer file is none the wrapper wrote. */
const EXIT_FILE_MAX_BYTES = 16;

/**
 * What the exit wrapper wrote ('' while the command runs): read never through a symlink nor from
 * a FIFO planted there (opened blocking, a FIFO held one of libuv's few threads until someone
 * wrote to it), and only as much as an exit status takes.
 */
async function readExitFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') return '';
    return ifMissing('')(error);
  }
  try {
    if (!(await handle.stat()).isFile()) return '';
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(EXIT_FILE_MAX_BYTES), 0, EXIT_FILE_MAX_BYTES, 0);
    return buffer.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
}
