import { z } from 'zod';

/** tmux session names are `hangar-<name>`; keep names safe for tmux targets and file names. */
export const SessionName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, {
  error: 'expected 1-63 letters, digits, "-" or "_", starting with a letter or digit',
});

export const TerminalSize = {
  cols: z.number().int().min(2).max(1000),
  rows: z.number().int().min(2).max(500),
};

export const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, { error: 'expected an environment variable name' });

/**
 * Text that becomes a program's argument, environment value or path: any bytes but NUL, which the
 * operating system cannot pass (it ends a C string) — refused here rather than cut short there.
 */
export function argumentText(max: number) {
  return z
    .string()
    .max(max)
    .refine((text) => !text.includes('\0'), { error: 'may not contain a NUL byte (\\0): no program can be given one' });
}

export const EnvValue = argumentText(32768);

export const SessionCreateParams = z.object({
  name: SessionName,
  command: z.array(argumentText(4096).min(1)).min(1).max(256),
  /** Absolute, or starting with `~/` (the host user's home). Defaults to the home directory. */
  cwd: argumentText(4096).min(1).optional(),
  env: z.record(EnvName, EnvValue).optional(),
  /** Written as CLAUDE.md and AGENTS.md into cwd before the command starts. */
  instructions: z
    .string()
    .max(1024 * 1024)
    .optional(),
  cols: TerminalSize.cols.default(80),
  rows: TerminalSize.rows.default(24),
});
export type SessionCreateParams = z.input<typeof SessionCreateParams>;

/**
 * What a coding agent in a session is doing, from its own lifecycle hooks (Claude Code's), not
 * from reading the screen: `starting` until it reports, `idle` when it waits for a prompt (at
 * start, or done with a turn), `running` while it works, `waiting_input` when it asks the user
 * something (a permission, a question). `detail` is the agent's own words, when it gave some.
 */
export const AgentState = z.enum(['starting', 'idle', 'running', 'waiting_input']);
export type AgentState = z.infer<typeof AgentState>;
export const AgentStatus = z.object({
  kind: z.literal('claude-code'),
  state: AgentState,
  /** When it entered this state, ms since the epoch. */
  since: z.number().int(),
  detail: z.string().max(512).nullable(),
});
export type AgentStatus = z.infer<typeof AgentStatus>;

export const SessionInfo = z.object({
  name: SessionName,
  command: z.array(z.string()),
  cwd: z.string(),
  /** Milliseconds since the epoch. */
  created_at: z.number().int(),
  attached_clients: z.number().int().nonnegative(),
  alive: z.boolean(),
  /** Set for a session that runs a coding agent Hangar understands (the command is `claude`). */
  agent: AgentStatus.nullable().default(null),
});
export type SessionInfo = z.infer<typeof SessionInfo>;

/**
 * The host's tmux server as its agent last saw it. `ok: false` when the server went away (killed,
 * crashed) while sessions whose commands had not ended ran on it: they are lost, and `message`
 * says so and what happens next. It stays so until a new session starts a fresh server.
 */
export const TmuxServerState = z.object({
  ok: z.boolean(),
  /** Printed as it is by the CLI: no control characters (an agent's message never has any). */
  message: z
    .string()
    .max(4096)
    .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, { error: 'expected text without control characters' })
    .nullable(),
  /** The sessions that were running when the server went away. */
  lost_sessions: z.array(SessionName),
  /** When the agent noticed, ms since the epoch. */
  lost_at: z.number().int().nullable(),
});
export type TmuxServerState = z.infer<typeof TmuxServerState>;

/** Nothing lost (also what an agent that predates TmuxServerState is taken to say). */
export const TMUX_SERVER_OK: TmuxServerState = { ok: true, message: null, lost_sessions: [], lost_at: null };

/** Event `sessions.changed` from an agent: its sessions after one was made, ended or (de)attached. */
export const SessionsChangedEvent = z.object({
  sessions: z.array(SessionInfo),
  tmux: TmuxServerState.default(TMUX_SERVER_OK),
});

/** Event `session.bell` from an agent: a session rang the terminal bell (an agent waiting for an answer). */
export const SessionBellEvent = z.object({ name: SessionName });

export const SessionListResult = z.object({
  sessions: z.array(SessionInfo),
  tmux: TmuxServerState.default(TMUX_SERVER_OK),
});

export const SessionKillParams = z.object({ name: SessionName });

export const StreamId = z.number().int().positive().max(0xffffffff);

export const SessionAttachParams = z.object({
  name: SessionName,
  ...TerminalSize,
  /**
   * Opened by the client before it sends the request (so no output can arrive for a stream it
   * does not know yet); carries output (agent → client) and input (client → agent).
   */
  stream_id: StreamId,
  /** Present when a client comes back after a dropped link. */
  resume: z
    .object({
      attachment_id: z.string().min(1).max(64),
      /** Offset of the next byte the client needs (everything before it was received). */
      offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    })
    .optional(),
});
export type SessionAttachParams = z.infer<typeof SessionAttachParams>;

export const SessionAttachResult = z.object({
  attachment_id: z.string(),
  /** Offset of the first output byte that will arrive on the stream. */
  offset: z.number().int().nonnegative(),
  /**
   * true: the stream continues exactly where the client left off.
   * false on a resume: the replay window passed and nothing was sent on the stream; the
   * client shows an "output skipped" marker and attaches afresh (a clean tmux redraw).
   */
  resumed: z.boolean(),
});
export type SessionAttachResult = z.infer<typeof SessionAttachResult>;

export const TerminalResizeParams = z.object({
  attachment_id: z.string().min(1).max(64),
  ...TerminalSize,
});

export const SessionDetachParams = z.object({ attachment_id: z.string().min(1).max(64) });
