import {
  FINAL_TASK_STATES,
  HangarError,
  TASK_LIST_BUDGET_BYTES,
  TASK_LIST_MAX_TASKS,
  TASK_LIST_PROMPT_CHARS,
  taskSessionName,
  toHangarError,
  type Disposable,
  type HostTaskCapabilities,
  type PublishHostEvent,
  type SessionInfo,
  type TaskInfo,
  type TaskSpec,
} from '@hangar/shared';
import type Database from 'better-sqlite3';
import { basename } from 'node:path';
import type { Logger } from 'pino';
import type { SessionManager } from '../sessions/index.js';
import { resolveWorkdir } from '../sessions/workdir.js';
import { assertFits, hostTaskCapabilities, isKnownAgent, isPromptOption } from './fit.js';
import { TaskStore, type TaskChange } from './task-store.js';
import { addTaskWorktree, checkTaskRepo } from './worktree.js';

export { KNOWN_AGENT_COMMANDS } from './fit.js';

/** A task as a listing carries it: its prompt cut to TASK_LIST_PROMPT_CHARS, flagged so. */
function listedTask(task: TaskInfo): TaskInfo {
  const prompt = task.spec.prompt;
  if (prompt.length <= TASK_LIST_PROMPT_CHARS) return task;
  // Never half a surrogate pair.
  let end = TASK_LIST_PROMPT_CHARS - 1;
  if (/[\uD800-\uDBFF]/.test(prompt[end - 1]!)) end -= 1;
  return { ...task, spec: { ...task.spec, prompt: `${prompt.slice(0, end)}…` }, prompt_cut: true };
}

/**
 * The task's command line: its agent's and the prompt last. A prompt starting with "-" ("--help me
 * fix x", "- [ ] a checklist") would be read as an option (claude: `error: unknown option`, and the
 * task ends at once): a known agent command (KNOWN_AGENT_COMMANDS, by its file's name; each parses
 * its options as POSIX does) gets `--` before it, which ends its options. One ending in an option
 * that takes the prompt as its value (`aider --message`, `gemini -p`: isPromptOption) gets it joined
 * to that option instead (`--message=-v`, as argparse and yargs both read it): a `--` there is taken
 * as the option's missing value and refused (argparse: "expected one argument"; yargs: "Not enough
 * arguments following: p"), and "-v" alone is an option. Another command is the user's own, run as
 * given: its parsing is unknown (`sh -c … <prompt>` takes `--` as $0), so its argv may end with `--` itself.
 */
export function agentCommand(spec: Pick<TaskSpec, 'agent' | 'prompt'>): string[] {
  const program = basename(spec.agent[0]!);
  const last = spec.agent.at(-1)!;
  if (!spec.prompt.startsWith('-') || last === '--' || !isKnownAgent(program)) return [...spec.agent, spec.prompt];
  if (spec.agent.length > 1 && isPromptOption(program, last)) {
    return [...spec.agent.slice(0, -1), `${last}=${spec.prompt}`];
  }
  return [...spec.agent, '--', spec.prompt];
}

/** Tasks run at once unless `serve --max-tasks` says otherwise: each is a coding agent, a heavy program. */
export const DEFAULT_MAX_TASKS = 2;

export interface TaskServiceOptions {
  db: Database.Database;
  /** The agent's data directory: a task with a repo has its worktree in tasks/<id>/work there. */
  dataDir: string;
  sessions: SessionManager;
  publish: PublishHostEvent;
  maxTasks: number;
  labels: readonly string[];
  runner: 'user' | 'service';
  logger: Logger;
}

/**
 * The agent tasks this host claimed. Each runs in a tmux session of its own (`task-<short id>`,
 * in its workspace), its agent started with the prompt as its last argument; what the agent does
 * is read from its hooks (Claude Code's, as any session running claude): `starting` until it
 * reports, `running` / `waiting_input` as it says, `completed` when it ends its turn (the Stop
 * hook: the session stays, for the user to read and go on) or its command exits 0, `error` on a
 * non-zero exit or a session that went away without one. Tasks and tmux sessions outlive the agent:
 * a restarted agent takes its tasks up again from agent.db and the sessions it finds.
 */
export class TaskService implements Disposable {
  private readonly store: TaskStore;
  private readonly subscriptions: Disposable[];
  /** claim() is check-then-act against the limit; one at a time keeps the limit exact. */
  private claims: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** Tasks whose session is being made: a listing taken before it was made must not end them. */
  private readonly creating = new Set<string>();

  private constructor(private readonly options: TaskServiceOptions) {
    this.store = new TaskStore(options.db, options.dataDir);
    this.subscriptions = [
      options.sessions.onChanged((sessions) => void this.follow(sessions)),
      options.sessions.onAgentStatus(({ session, event }) => {
        if (event !== 'Stop') return;
        const task = this.store.active().find((t) => t.session === session);
        // The agent ended its turn: the task is done (the session stays, the user may go on in it).
        if (task) this.change(task.id, { state: 'completed', detail: null });
      }),
    ];
  }

  /** Takes up the tasks a previous agent left: their sessions as they are now. */
  static async start(options: TaskServiceOptions): Promise<TaskService> {
    const service = new TaskService(options);
    await service.follow(await options.sessions.list());
    return service;
  }

  capabilities(): HostTaskCapabilities {
    return hostTaskCapabilities({
      labels: this.options.labels,
      runner: this.options.runner,
      maxTasks: this.options.maxTasks,
    });
  }

  claim(params: { id: string; spec: TaskSpec; created_at: number }, device: string): Promise<TaskInfo> {
    const run = this.claims.then(() => this.claimNow(params, device));
    this.claims = run.catch(() => undefined);
    return run;
  }

  /**
   * Newest first, each prompt cut to TASK_LIST_PROMPT_CHARS (prompt_cut), as many as fit in
   * TASK_LIST_BUDGET_BYTES of JSON: 200 whole 6 KiB prompts (more bytes where JSON escapes control
   * characters) were past the link's 1 MiB control frame, and the host's whole listing failed.
   */
  list(): { tasks: TaskInfo[]; truncated: number } {
    const all = this.store.list(TASK_LIST_MAX_TASKS + 1);
    const tasks: TaskInfo[] = [];
    let bytes = 0;
    for (const task of all.slice(0, TASK_LIST_MAX_TASKS)) {
      const listed = listedTask(task);
      bytes += Buffer.byteLength(JSON.stringify(listed)) + 1;
      if (bytes > TASK_LIST_BUDGET_BYTES) break;
      tasks.push(listed);
    }
    return { tasks, truncated: this.store.count() - tasks.length };
  }

  get(id: string): TaskInfo {
    const task = this.store.get(id);
    if (!task) {
      throw new HangarError('E_TASK_NOT_FOUND', `no task ${id} on this host; list them with: hangar task ls`, { id });
    }
    return task;
  }

  /** Ends a task that has not ended: its session is killed. One that ended is answered as it is. */
  async cancel(id: string): Promise<TaskInfo> {
    const task = this.get(id);
    if (FINAL_TASK_STATES.includes(task.state)) return task;
    // Recorded first: the session's end that follows is then no error.
    this.change(id, { state: 'cancelled', reason: 'cancelled by the user' });
    await this.killSession(task.session!);
    return this.get(id);
  }

  private async killSession(session: string): Promise<void> {
    await this.options.sessions.kill(session).catch((error: unknown) => {
      const failure = toHangarError(error);
      if (failure.code !== 'E_SESSION_NOT_FOUND') throw failure;
    });
  }

  dispose(): void {
    this.disposed = true;
    for (const subscription of this.subscriptions) subscription.dispose();
  }

  private async claimNow(
    params: { id: string; spec: TaskSpec; created_at: number },
    device: string,
  ): Promise<TaskInfo> {
    const known = this.store.get(params.id);
    if (known) return known; // the same task offered again (its first answer was lost): as it is
    const host = this.capabilities();
    assertFits(params.spec, host);
    const workdir = await resolveWorkdir(params.spec.repo ?? params.spec.cwd).catch((error: unknown) => {
      throw new HangarError('E_TASK_UNFIT', `does not fit: ${toHangarError(error).message}`);
    });
    const active = this.store.active().length;
    if (active >= this.options.maxTasks) {
      throw new HangarError(
        'E_TASK_LIMIT',
        `runs ${active} tasks already, its limit (hangar-agent serve --max-tasks ${this.options.maxTasks})`,
        { limit: this.options.maxTasks },
      );
    }
    // Its session counts against --max-sessions too: a host with none free lets another take it. A
    // task claimed whose session is not made yet (a --repo one is answered while git checks out)
    // counts as the session it will have.
    const sessions = (await this.options.sessions.slotsTaken()).taken;
    if (sessions >= this.options.sessions.sessionLimit) {
      throw new HangarError(
        'E_TASK_LIMIT',
        `runs ${sessions} sessions already, its limit (hangar-agent serve --max-sessions ${this.options.sessions.sessionLimit}); a task needs one`,
        { limit: this.options.sessions.sessionLimit },
      );
    }
    // What is cheap to check is refused at the claim: not a repository, no such ref.
    if (params.spec.repo !== undefined) await checkTaskRepo(workdir, params.spec.ref);
    const session = taskSessionName(params.id);
    const claimed = this.store.insert({ ...params, session, device }, Date.now());
    this.options.logger.info({ task: params.id, session }, 'task claimed');
    this.publish(claimed);
    this.creating.add(params.id);
    // Its slot is held until its session is made or it fails: a session of the user's made while
    // git checks out cannot take it.
    const slot = this.options.sessions.reserve(session);
    const started = this.startTask(params, workdir, session, slot).catch((error: unknown) =>
      this.options.logger.error({ task: params.id, err: error }, 'task start failed'),
    );
    // A task with a repo is answered at once, `starting`: its worktree's checkout may take longer
    // than the core waits for a claim's answer. Any other is answered once its session is made.
    if (params.spec.repo === undefined) await started;
    return this.get(params.id);
  }

  /** Makes the task's worktree (a task with a repo) and its session; a failure is the task's error. */
  private async startTask(
    params: { id: string; spec: TaskSpec; created_at: number },
    workdir: string,
    session: string,
    slot: Disposable,
  ): Promise<void> {
    try {
      let cwd = workdir;
      if (params.spec.repo !== undefined) {
        try {
          // A worktree of its own, on its own branch; both outlive the task.
          cwd = (await addTaskWorktree(this.options.dataDir, params.id, workdir, params.spec.ref)).path;
        } catch (error) {
          // What git made is removed: the task shows no worktree (nor branch) it does not have.
          this.store.markWorktreeFailed(params.id);
          this.change(params.id, { state: 'error', reason: toHangarError(error).message });
          return;
        }
        // Cancelled while its worktree was being made: no session then.
        if (this.get(params.id).state === 'cancelled') return;
      }
      const made = await this.options.sessions.create({
        name: session,
        command: agentCommand(params.spec),
        cwd,
        cols: 120,
        rows: 40,
      });
      // Cancelled while its session was being made (cancel found no session to kill): ended now.
      if (this.get(params.id).state === 'cancelled') await this.killSession(session);
      // An agent that reports nothing (not Claude Code): it runs as long as its session does.
      else if (made.agent === null && made.alive) this.change(params.id, { state: 'running' });
    } catch (error) {
      const failure = toHangarError(error);
      this.change(params.id, { state: 'error', reason: `its agent could not start: ${failure.message}` });
    } finally {
      slot.dispose();
      this.creating.delete(params.id);
    }
    // A command that ended at once took its session with it: said now, not at the next change.
    await this.follow(await this.options.sessions.list()).catch((error: unknown) =>
      this.options.logger.warn({ task: params.id, err: error }, 'following sessions failed'),
    );
  }

  /** The sessions as they are now: each active task's state follows its session and agent. */
  private async follow(sessions: SessionInfo[]): Promise<void> {
    if (this.disposed) return;
    for (const task of this.store.active()) {
      const session = sessions.find((s) => s.name === task.session);
      if (session?.alive) {
        const agent = session.agent;
        if (agent === null) {
          if (task.state === 'starting') this.change(task.id, { state: 'running' });
        } else if (agent.state === 'running') this.change(task.id, { state: 'running', detail: null });
        else if (agent.state === 'waiting_input')
          this.change(task.id, { state: 'waiting_input', detail: agent.detail });
        else if (agent.state === 'idle' && (task.state === 'running' || task.state === 'waiting_input')) {
          // Its turn ended while no Stop was seen (the agent was restarted meanwhile).
          this.change(task.id, { state: 'completed', detail: null });
        }
        continue;
      }
      if (this.creating.has(task.id)) continue;
      const exit = await this.options.sessions.exitStatus(task.session!);
      if (exit === 0) this.change(task.id, { state: 'completed', exit_code: 0, detail: null });
      else if (exit !== null)
        this.change(task.id, { state: 'error', exit_code: exit, reason: `its agent exited with status ${exit}` });
      else
        this.change(task.id, {
          state: 'error',
          reason: 'its session ended without an exit status: killed (hangar session kill, or tmux itself)',
        });
    }
  }

  private change(id: string, change: TaskChange): void {
    const after = this.store.update(id, change, Date.now());
    if (after) this.publish(after);
  }

  private publish(task: TaskInfo): void {
    this.options.logger.debug({ task: task.id, state: task.state }, 'task changed');
    this.options.publish('task.updated', { task });
  }
}
