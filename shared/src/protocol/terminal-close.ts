/**
 * Close codes of a terminal stream, the same from the agent to the core and from the core to its
 * clients: the session's command ended (with `exit_code`), it was killed, this client detached,
 * or something failed (the message says what). In a module of its own, without zod: the hangar
 * command's attach reads it on its fast path (issue 18).
 */
export const TERMINAL_CLOSE = {
  ended: 'session_ended',
  killed: 'session_killed',
  detached: 'detached',
  error: 'error',
} as const;
