import { SessionName } from '@hangar/shared';
import { AppendedEvents } from './appended-events.js';
import type { Logger } from 'pino';
import { PLAIN_PATH } from './session-changes.js';
import { SESSION_PREFIX } from './tmux.js';

/** The file is emptied once it holds this much (a bell per line, names are short). */
const TRUNCATE_AT = 64 * 1024;

/**
 * A server config line: on a bell in any window, tmux appends that session's name (shell-quoted
 * by tmux's `q:` modifier, so no name can inject a command) to `file`. None for a path we would
 * have to quote.
 */
export function attentionHook(file: string): string[] {
  if (!PLAIN_PATH.test(file)) return [];
  return [`set-hook -g alert-bell[99] 'run-shell -b "echo #{q:session_name} >> \\"${file}\\""'`];
}

/**
 * Sessions that rang the terminal bell: what Claude Code and other agents do when they wait for
 * an answer (with its terminal_bell notification channel), and what many builds do when done.
 * tmux sees the bell whether or not anyone is attached, so the user can be told while away.
 */
export class SessionAttention extends AppendedEvents<string> {
  /** A session of ours (its name without the prefix) rang its bell. */
  readonly onBell = this.onEvent;

  constructor(file: string, logger: Logger | undefined) {
    super(file, logger, { parse: bellingSessions, truncateAt: TRUNCATE_AT, what: 'session bells' });
  }
}

function* bellingSessions(lines: string[]): Iterable<string> {
  for (const line of new Set(lines)) {
    if (!line.startsWith(SESSION_PREFIX)) continue; // a session someone made by hand on our socket
    const name = line.slice(SESSION_PREFIX.length);
    if (SessionName.safeParse(name).success) yield name;
  }
}
