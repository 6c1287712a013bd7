import { AgentStatus, SessionName, shellQuote, type AgentState } from '@hangar/shared';
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { AppendedEvents } from './appended-events.js';

/**
 * Claude Code in a session tells us what it is doing through its lifecycle hooks, loaded for that
 * session alone with `claude --settings <file>` (never in the user's global settings, which would
 * fire for every Claude they run). Each hook appends one short line, `<session> <event> [payload]`,
 * to one file the agent watches, like the bell hook. Hook contract: Claude Code's hooks reference
 * (settings `hooks.<Event>[] = {matcher?, hooks: [{type: 'command', command}]}`, the event's JSON
 * on the command's stdin). Verified against test/fixtures/claude, a stand-in that enforces it.
 */

/** Events that change what we show, and what each means. */
const EVENT_STATE: Record<string, AgentState | undefined> = {
  SessionStart: 'idle',
  UserPromptSubmit: 'running',
  PreToolUse: 'running',
  PostToolUse: 'running',
  Stop: 'idle',
};
/** Notification types that mean the agent waits for the user (others, such as auth_success, do not). */
const ASKING = new Set(['permission_prompt', 'elicitation_dialog']);
/** Payload kept of a Notification: its type and message are near the start; tool payloads are never read. */
const PAYLOAD_BYTES = 4096;
/** The events file is emptied once it holds this much. */
const TRUNCATE_AT = 256 * 1024;

/** The command is Claude Code: its hooks can be wired. */
export function isClaudeCode(command: readonly string[]): boolean {
  return command.length > 0 && basename(command[0]!) === 'claude';
}

/** `claude …` with our settings layered on (Claude Code merges --settings over the user's own). */
export function withHookSettings(command: readonly string[], settingsFile: string): string[] {
  return [command[0]!, '--settings', settingsFile, ...command.slice(1)];
}

/**
 * The settings file for one session. Its name is a SessionName (letters, digits, - and _) and the
 * events path is shell-quoted, so no hook command can be bent into another. Tool events keep
 * nothing of their stdin (a tool's input or output can be megabytes); a Notification its first 4 KiB.
 */
export function hookSettings(session: string, eventsFile: string): string {
  const file = shellQuote(eventsFile);
  // Stdin is drained (to /dev/null): Claude writes the event to it, and a hook that left it unread
  // would make that write fail.
  const mark = (event: string) => `cat > /dev/null; printf '%s %s\\n' ${session} ${event} >> ${file}`;
  const hook = (command: string, matcher?: string) => [
    { ...(matcher !== undefined ? { matcher } : {}), hooks: [{ type: 'command', command }] },
  ];
  const settings = {
    hooks: {
      SessionStart: hook(mark('SessionStart')),
      UserPromptSubmit: hook(mark('UserPromptSubmit')),
      PreToolUse: hook(mark('PreToolUse'), '*'),
      PostToolUse: hook(mark('PostToolUse'), '*'),
      Stop: hook(mark('Stop')),
      Notification: hook(
        `{ printf '%s Notification ' ${session}; head -c ${PAYLOAD_BYTES} | tr '\\n\\r' '  '; echo; } >> ${file}; cat > /dev/null`,
      ),
    },
  };
  return JSON.stringify(settings, null, 2);
}

export interface AgentStatusChange {
  session: string;
  status: AgentStatus;
  /** The hook event that set it (`Stop`: the agent ended its turn); agent tasks tell a finished turn by it. */
  event: string;
}

/**
 * Reads the hook lines as they come and turns them into each session's AgentStatus. Lines of
 * sessions that are not ours, unknown events or odd payloads are skipped, never trusted.
 */
export class AgentHookEvents extends AppendedEvents<AgentStatusChange> {
  readonly onStatus = this.onEvent;

  constructor(file: string, logger: Logger | undefined) {
    // Made anew at start (AppendedLines): a restarted agent has the states in tmux already, old lines are old news.
    super(file, logger, {
      parse: latestPerSession,
      truncateAt: TRUNCATE_AT,
      what: 'agent hook events',
    });
  }
}

/** A burst (prompt, tool, tool, stop) is one change per session: the last. */
function latestPerSession(lines: string[]): Iterable<AgentStatusChange> {
  const latest = new Map<string, AgentStatusChange>();
  for (const line of lines) {
    const change = parseHookLine(line, Date.now());
    if (change) latest.set(change.session, change);
  }
  return latest.values();
}

/** One hook line → the status it sets, or undefined for a line that changes nothing. */
export function parseHookLine(line: string, now: number): AgentStatusChange | undefined {
  const match = /^(\S+) (\S+)(?: (.*))?$/.exec(line);
  if (!match || !SessionName.safeParse(match[1]).success) return undefined;
  const [, session, event, payload] = match as unknown as [string, string, string, string | undefined];
  let state = EVENT_STATE[event];
  let detail: string | null = null;
  if (event === 'Notification') {
    // Read with patterns, not JSON.parse: the payload may be cut at 4 KiB.
    const type = /"notification_type"\s*:\s*"([a-z_]+)"/.exec(payload ?? '')?.[1];
    const message = /"message"\s*:\s*"((?:[^"\\]|\\.){0,400})/.exec(payload ?? '')?.[1];
    if (type === undefined || !ASKING.has(type)) return undefined;
    state = 'waiting_input';
    detail = message === undefined ? null : unescapeJson(message);
  }
  if (state === undefined) return undefined;
  const status = AgentStatus.safeParse({ kind: 'claude-code', state, since: now, detail });
  return status.success ? { session, status: status.data, event } : undefined;
}

function unescapeJson(text: string): string {
  try {
    return JSON.parse(`"${text}"`) as string;
  } catch {
    return text; // cut in the middle of an escape: the raw text says enough
  }
}
