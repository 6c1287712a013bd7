import { AgentStatus, SessionName, type SessionCreateParams, type SessionInfo } from '@hangar/shared';
import { z } from 'zod';
import { outputLogCommand } from './output-log.js';
import { SESSION_PREFIX, escapeCommandArg, escapeFormat } from './tmux.js';

/**
 * How a session is written into tmux and read back from it: the exit wrapper, the options that
 * carry its metadata, and the list-sessions format. tmux is the only store of sessions, so this
 * is their on-disk format.
 */

/**
 * The command runs under this wrapper so its exit status outlives the pane: tmux forgets a
 * pane's status as soon as the session closes. The exit file path is $1, not spliced into the
 * script, so no quoting of the data dir is needed.
 */
const EXIT_WRAPPER =
  'exit_file=$1; changed=$2; shift 2; "$@"; code=$?; printf %s "$code" > "$exit_file"; touch "$changed"; exit $code';

/**
 * Fields of list-sessions, tab-separated: every field is a name, a number or base64url when we
 * wrote it. The server's pid comes first: it is the one field tmux writes itself, and a tab in
 * anything after it (an option a pane's program set: tmux prints option values as they are) can
 * only shift what follows it, never the pid.
 */
export const LIST_FORMAT = [
  // The server's pid: a server that went away and came back is another pid (tmux-loss.ts), and
  // the agent gives it the echo's CPU slice (preferLatency): never a pid someone wrote.
  '#{pid}',
  '#{session_name}',
  '#{session_created}',
  '#{session_attached}',
  '#{pane_dead}',
  '#{@hangar_command}',
  '#{@hangar_cwd}',
  '#{@hangar_agent}',
].join('\t');

/** Metadata is stored base64url-encoded so no separator, newline or odd byte can break parsing. */
export function encodeOption(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/**
 * Read back with the schema of what was stored: a session on our socket with foreign or damaged
 * metadata is still listed, with the fallback.
 */
function decodeOption<S extends z.ZodType>(schema: S, value: string | undefined, fallback: z.output<S>): z.output<S> {
  if (!value) return fallback;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    return fallback;
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : fallback;
}

/** Parsed params (defaults applied). */
type CreateParams = z.output<typeof SessionCreateParams>;

/**
 * One tmux invocation that makes the session: the commands run back to back inside the server
 * before it reads the pane, so pipe-pane sees the very first byte and list() never sees a session
 * without metadata. The later commands have no -t: they apply to the session just made (an exact
 * `=name` target does not resolve yet within the same command list).
 */
export function newSessionCommands(o: {
  params: CreateParams;
  target: string;
  cwd: string;
  /** `-e KEY=value` pairs, already escaped. */
  env: string[];
  run: string[];
  exitFile: string;
  changesFile: string;
  sessionDir: string;
  agent: AgentStatus | null;
}): string[] {
  const command = ['sh', '-c', EXIT_WRAPPER, 'hangar', o.exitFile, o.changesFile, ...o.run].map(escapeCommandArg);
  const size = ['-x', String(o.params.cols), '-y', String(o.params.rows)];
  const startDir = escapeCommandArg(escapeFormat(o.cwd));
  return [
    ...['new-session', '-d', '-s', o.target, ...size, '-c', startDir, ...o.env, ...command, ';'],
    ...['set-option', '@hangar_command', encodeOption(o.params.command), ';'],
    ...['set-option', '@hangar_cwd', encodeOption(o.cwd), ';'],
    ...(o.agent ? ['set-option', '@hangar_agent', encodeOption(o.agent), ';'] : []),
    ...['pipe-pane', '-o', outputLogCommand(o.sessionDir)],
  ];
}

/** list-sessions output (LIST_FORMAT) as our sessions, and the server's pid. */
export function parseSessionList(stdout: string): { sessions: SessionInfo[]; serverPid: number | undefined } {
  const sessions: SessionInfo[] = [];
  let serverPid: number | undefined;
  for (const line of stdout.split('\n')) {
    const [pid, name, created, attached, dead, command, cwd, agent] = line.split('\t');
    if (/^[1-9]\d*$/.test(pid ?? '')) serverPid = Number(pid);
    // Someone else's session on our socket (made by hand, odd name) is not ours to report.
    if (!name?.startsWith(SESSION_PREFIX) || !SessionName.safeParse(name.slice(SESSION_PREFIX.length)).success)
      continue;
    sessions.push({
      name: name.slice(SESSION_PREFIX.length),
      command: decodeOption(z.array(z.string()), command, []),
      cwd: decodeOption(z.string(), cwd, ''),
      created_at: (Number(created) || 0) * 1000, // tmux counts seconds; the protocol, milliseconds
      attached_clients: Number(attached) || 0,
      alive: dead !== '1',
      // Read back with the wire schema: an option of another shape is no status, not a guess.
      agent: decodeOption(AgentStatus.nullable(), agent, null),
    });
  }
  return { sessions, serverPid };
}
