import { z } from 'zod';
import { HostName } from './hosts.js';
import { SessionName } from './sessions.js';

/**
 * Agent tasks: a prompt for an AI coding agent, queued on the user's computer and claimed by a host
 * that fits, where it runs in a terminal session (`task-<short id>`) the user can attach to.
 * README "Agent tasks" says what each field and state means to a user.
 */

export const TaskId = z.string().regex(/^t-[0-9a-f]{16}$/, { error: 'expected a task id like t-1a2b3c4d5e6f7a8b' });
export type TaskId = z.infer<typeof TaskId>;

/** The session a task runs in: `task-` and the first 8 hex digits of its id. */
export function taskSessionName(id: string): string {
  return `task-${id.slice(2, 10)}`;
}

/** What a task may still become (queued… paused) or has ended as (completed, error, cancelled). */
export const TASK_STATES = [
  'queued',
  'starting',
  'running',
  'waiting_input',
  'paused',
  'completed',
  'error',
  'cancelled',
] as const;
export const TaskState = z.enum(TASK_STATES);
export type TaskState = z.infer<typeof TaskState>;
export const FINAL_TASK_STATES: readonly TaskState[] = ['completed', 'error', 'cancelled'];

/**
 * Which kind of host agent may run it. `user`: an agent run by a person (`hangar-agent serve` by
 * hand, the one `npm start` embeds), with that login's files and credentials. `service`: an agent
 * installed as a system service (`hangar-agent install`). `any`: either. `action` (a CI runner such
 * as GitHub Actions) is a runner Hangar does not have: refused with a message that says so.
 */
export const TaskRunner = z
  .enum(['any', 'user', 'service', 'action'], {
    error: (issue) => `unknown runner ${JSON.stringify(issue.input)}: expected any, user or service`,
  })
  .refine((runner) => runner !== 'action', {
    error:
      'runner "action": Hangar has no CI runners (GitHub Actions or the like) to run a task on; use any, user or service',
  });
export type TaskRunner = z.output<typeof TaskRunner>;

/** The kind of agent a host runs as (see TaskRunner). */
export const HostRunner = z.enum(['user', 'service']);

/** The operating systems a need may name, as `os:<name>` (Node's platform() linux and darwin). */
export const TASK_OS = ['linux', 'macos'] as const;

/**
 * One capability a task needs: `os:linux` or `os:macos`, `arch:<x64|arm64|…>`, `label:<name>` (a
 * label the host's agent was started with, `hangar-agent serve --label gpu`), or a bare program name
 * that must be on the host agent's PATH (`claude`, `codex`, `docker`).
 */
export const TaskNeed = z
  .string()
  .max(64, { error: 'a need is at most 64 characters' })
  .regex(
    /^(?:os:(?:linux|macos)|arch:[a-z0-9_]{1,16}|label:[a-z0-9][a-z0-9._-]{0,47}|[A-Za-z0-9][A-Za-z0-9._+-]{0,63})$/,
    {
      error: 'expected a need like os:linux, os:macos, arch:arm64, label:<name> or a program name such as claude',
    },
  );
export type TaskNeed = z.infer<typeof TaskNeed>;

/** A host's label (`serve --label`): what `label:<name>` needs match. */
export const HostLabel = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,47}$/, {
  error: 'expected a label of 1-48 lowercase letters, digits, ".", "_" or "-"',
});

/**
 * Prompts beyond this (UTF-8 bytes) belong in a file in the workspace, which the prompt can name.
 * The prompt is the agent's last argument, and tmux takes a session's whole command in one message
 * of 16 KiB in which the command counts about 2.3 times (TMUX_MAX_COMMAND_BYTES): 6 KiB leaves room
 * for the rest; a longer prompt was claimed, then failed to start on every host.
 */
export const MAX_PROMPT_BYTES = 6 * 1024;

/**
 * What a task's worktree starts from: a branch, tag or commit of its repository, as `git
 * check-ref-format --allow-onelevel` allows (the host asks git too). Never starting with `-`, so
 * it is never read as an option (`--upload-pack=…`).
 */
export const GitRef = z
  .string()
  .min(1, { error: 'the ref is empty: name a branch, tag or commit' })
  .max(256, { error: 'a ref is at most 256 characters' })
  .refine((ref) => !ref.startsWith('-'), {
    error: 'a ref may not start with "-" (git would read it as an option): name a branch, tag or commit',
  })
  .refine(
    (ref) =>
      // git check-ref-format's rules: no control characters, space, ~ ^ : ? * [ \, "..", "@{",
      // "//"; not "@"; no part starting with "." or ending with ".lock"; not ending with "/" or ".".
      !/[\x00-\x20\x7f~^:?*[\\]|\.\.|@\{|\/\//.test(ref) &&
      ref !== '@' &&
      !ref.startsWith('/') &&
      !ref.endsWith('/') &&
      !ref.endsWith('.') &&
      ref.split('/').every((part) => !part.startsWith('.') && !part.endsWith('.lock')),
    { error: 'not a valid git ref (git check-ref-format): name a branch, tag or commit' },
  );

/** Where a task with a repo works: a git worktree on a branch of its own, left for the user to merge. */
export const TaskWorktree = z.object({
  /** `hangar/task-<8 hex>`, made from the task's ref. */
  branch: z.string(),
  /** The worktree's directory on the host (in its agent's data directory). */
  path: z.string(),
});
export type TaskWorktree = z.infer<typeof TaskWorktree>;

/** The branch a task with a repo works on: `hangar/` and its session's name. */
export function taskBranchName(id: string): string {
  return `hangar/${taskSessionName(id)}`;
}

const utf8Bytes = (text: string): number => new TextEncoder().encode(text).length;

/** argumentText without its bound: each field below says its own (zod's "Too big" says nothing of why). */
const noNul = () =>
  z
    .string()
    .refine((text) => !text.includes('\0'), { error: 'may not contain a NUL byte (\\0): no program can be given one' });

/**
 * A directory on the host: at most PATH_MAX (4096) bytes, as the kernel takes a path (NewTaskSpec
 * counts the bytes: 4096 characters can be 16 KiB of UTF-8).
 */
const MAX_DIRECTORY_BYTES = 4096;
const directoryTooLong = (field: string) =>
  `the ${field} is over ${MAX_DIRECTORY_BYTES} bytes (UTF-8), more than a path on the host may be`;
const hostDirectory = (field: string) =>
  noNul()
    .min(1, { error: `the ${field} is empty: give a directory on the host` })
    .max(MAX_DIRECTORY_BYTES, { error: directoryTooLong(field) })
    .refine((p) => p.startsWith('/') || p === '~' || p.startsWith('~/'), {
      error: 'expected an absolute directory on the host, or one starting with ~/',
    });

/**
 * The agent's command line without the prompt, in UTF-8 bytes (each argument and its NUL): it goes
 * to tmux with the prompt in one 16 KiB message where the command counts about 2.3 times, so a
 * longer one could never start; 4 KiB is far more than any agent's options.
 */
export const MAX_AGENT_COMMAND_BYTES = 4 * 1024;

const promptTooLong = `the prompt is over ${MAX_PROMPT_BYTES / 1024} KiB: put the long part in a file in the task's directory and name it in the prompt`;

export const TaskSpec = z
  .object({
    // More characters than bytes allowed is over the byte bound too: the same words, not zod's "Too big".
    prompt: noNul()
      .min(1, { error: 'the prompt is empty: say what the agent should do' })
      .max(MAX_PROMPT_BYTES, { error: promptTooLong })
      // said once: a prompt over in characters is over in bytes too (max said it)
      .refine((p) => p.length > MAX_PROMPT_BYTES || utf8Bytes(p) <= MAX_PROMPT_BYTES, { error: promptTooLong })
      .refine((p) => p.trim() !== '', { error: 'the prompt is only blanks: say what the agent should do' }),
    /**
     * The directory on the host the agent works in: absolute, or `~/…` (the host user's home), as a
     * session's --cwd. It must exist there. Default: that home.
     */
    cwd: hostDirectory('cwd').optional(),
    /**
     * A git repository on the host (absolute, or `~/…`): the agent works in a worktree of its own,
     * on branch `hangar/task-<8 hex>` made from `ref`, instead of in `cwd` (the two exclude each other).
     */
    repo: hostDirectory('repo').optional(),
    /** What the worktree starts from; default the repository's HEAD. Only with `repo`. */
    ref: GitRef.optional(),
    /** The agent's command; the prompt is given as its last argument. */
    agent: z
      .array(
        noNul()
          .min(1, { error: 'an empty agent argument' })
          .max(4096, { error: 'an agent argument is at most 4096 characters' }),
      )
      .min(1, { error: 'the agent command is empty' })
      .max(64, { error: 'at most 64 agent arguments' })
      .default(['claude']),
    needs: z.array(TaskNeed).max(32, { error: 'at most 32 needs' }).default([]),
    runner: TaskRunner.default('any'),
  })
  .strict()
  .refine((spec) => spec.cwd === undefined || spec.repo === undefined, {
    error: 'give cwd or repo, not both: a task with a repo works in a git worktree of its own',
    path: ['repo'],
  })
  .refine((spec) => spec.ref === undefined || spec.repo !== undefined, {
    error: 'a ref needs a repo: it says what the worktree of that repository starts from',
    path: ['ref'],
  });
export type TaskSpec = z.output<typeof TaskSpec>;
export type TaskSpecInput = z.input<typeof TaskSpec>;

/**
 * A task as it comes in (tasks.add, task.claim): TaskSpec, bounded in bytes as well, each field
 * named when over, so a whole spec is some 17 KiB at most (64 agent arguments of 4096 control
 * characters, each allowed, were 1.5 MiB of JSON). TaskSpec alone reads what is stored and
 * listed, so that a task taken before these bounds still reads.
 */
export const NewTaskSpec = TaskSpec.superRefine((spec, ctx) => {
  const agentBytes = spec.agent.reduce((sum, arg) => sum + utf8Bytes(arg) + 1, 0);
  if (agentBytes > MAX_AGENT_COMMAND_BYTES) {
    ctx.addIssue({
      code: 'custom',
      path: ['agent'],
      message: `the agent command is ${agentBytes} bytes (UTF-8), at most ${MAX_AGENT_COMMAND_BYTES}: tmux takes a session's whole command line in one 16 KiB message; put long options in a file the agent reads`,
    });
  }
  for (const field of ['cwd', 'repo'] as const) {
    const dir = spec[field];
    if (dir !== undefined && utf8Bytes(dir) > MAX_DIRECTORY_BYTES)
      ctx.addIssue({ code: 'custom', path: [field], message: directoryTooLong(field) });
  }
});

export const TaskInfo = z.object({
  id: TaskId,
  spec: TaskSpec,
  state: TaskState,
  /** The host that claimed it; null while it waits in a computer's queue. */
  host: HostName.nullable(),
  /** The tmux session it runs in on that host (attach to answer the agent). */
  session: SessionName.nullable(),
  created_at: z.number().int(),
  /** When a host took it. */
  claimed_at: z.number().int().nullable(),
  /** When it last changed state. */
  updated_at: z.number().int(),
  finished_at: z.number().int().nullable(),
  /** The agent's last words (a question it asks, say), when it gave some. */
  detail: z.string().max(512).nullable(),
  /** Why it waits (queued: which hosts lack what) or failed (error), in words. */
  reason: z.string().max(4096).nullable(),
  /** The agent's exit status, once its command ended. */
  exit_code: z.number().int().nullable(),
  /** A task with a repo, once claimed: the branch and worktree it works in (they outlive it). */
  worktree: TaskWorktree.optional(),
  /**
   * True in a host's listing when the prompt is cut to its first TASK_LIST_PROMPT_CHARS characters
   * (and `…`); task.get (hangar task show) gives it whole.
   */
  prompt_cut: z.boolean().optional(),
});
export type TaskInfo = z.infer<typeof TaskInfo>;

// Host procedures (HOST_PROCEDURES) -------------------------------------------------------------

/**
 * A computer hands the host a task. Idempotent by id: claiming a task the host has returns its
 * record as it is. A task with a repo is answered `starting` before its worktree is made (that
 * comes after; git's failure then ends it `error`). Refused with E_TASK_UNFIT (a need is missing:
 * which; not a repository, no such ref) or E_TASK_LIMIT (the host
 * runs `serve --max-tasks` tasks already).
 */
export const TaskClaimParams = z.object({ id: TaskId, spec: NewTaskSpec, created_at: z.number().int() });
export const TaskIdParams = z.object({ id: TaskId });
/**
 * A host's listing: newest first, each prompt cut to TASK_LIST_PROMPT_CHARS characters, at most
 * TASK_LIST_MAX_TASKS tasks and TASK_LIST_BUDGET_BYTES of JSON (the link's control frames are 1 MiB);
 * `truncated` counts the older tasks left out.
 */
export const TaskListResult = z.object({
  tasks: z.array(TaskInfo),
  truncated: z.number().int().nonnegative().optional(),
});
export const TASK_LIST_PROMPT_CHARS = 300;
export const TASK_LIST_MAX_TASKS = 200;
export const TASK_LIST_BUDGET_BYTES = 512 * 1024;
/** Event `task.updated`: a task on the host changed state. */
export const TaskUpdatedEvent = z.object({ task: TaskInfo });

/**
 * What a host offers tasks (in host.info): its os (`linux`, `macos`, or Node's name for another),
 * arch, the known agent commands on its agent's PATH, its labels, its kind of runner and how many
 * tasks it runs at once.
 */
export const HostTaskCapabilities = z.object({
  os: z.string().max(32),
  arch: z.string().max(32),
  agents: z.array(z.string().max(64)).max(32),
  labels: z.array(HostLabel).max(32),
  runner: HostRunner,
  max_tasks: z.number().int().nonnegative(),
});
export type HostTaskCapabilities = z.infer<typeof HostTaskCapabilities>;

// Core procedures (CORE_PROCEDURES) -------------------------------------------------------------

/** A task as the core's callers see it: null host while it waits in this computer's queue. */
export const TaskRef = z.object({
  id: TaskId,
  /** Where it runs, when the caller knows; absent: this computer's queue, then every host. */
  host: HostName.optional(),
});
