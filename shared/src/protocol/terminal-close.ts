/**
 * Close codes of a terminal stream, the same from the agent to the core and from the core to its
 * clients: the session's command ended (with `exit_code`), it was killed, this client detached,
 * something failed (the message says what), or the terminal moved onto a lane. In a module of
 * its own, without zod: the hangar command's attach reads it on its fast path (issue 18).
 */
export const TERMINAL_CLOSE = {
  ended: 'session_ended',
  killed: 'session_killed',
  detached: 'detached',
  error: 'error',
  /**
   * The stream's last byte was sent: keys and output go on over a lane (lane/PROTOCOL.md,
   * "Purposes: terminal"), where the terminal's end comes as the lane's CLOSE.
   */
  lane: 'lane',
} as const;
