/**
 * Answers a terminal emulator sends on its own, without a key being pressed: to tmux's queries
 * when a client attaches (device attributes `ESC[>c`, its version `ESC[>q`; newer tmux also asks
 * for colours and modes) and focus in/out. xterm.js hands them out through the same onData as
 * keys, and so does any terminal `hangar attach` runs in, so they reach the agent as input.
 *
 * Only sequences no key produces are listed: each starts with ESC and a character that then has
 * to be `[?`, `[>`, `P>|`, `]11;rgb:` and the like. A key (Alt-P is `ESC P`, Alt-] is `ESC ]`)
 * arrives as a chunk of its own, never with a whole reply's tail after it in the same chunk.
 * Cursor position reports (`ESC[5;10R`) are not listed: xterm sends Shift-F3 as `ESC[1;2R`, and
 * tmux never asks its clients for the cursor position anyway.
 */
const REPLY = new RegExp(
  [
    // Primary and secondary device attributes: ESC[?64;1;2c, ESC[>0;276;0c.
    '\\x1b\\[[?>][0-9;]*c',
    // Status report (DSR 5): ESC[0n.
    '\\x1b\\[0n',
    // Mode reports (DECRPM): ESC[?2026;2$y.
    '\\x1b\\[\\?[0-9;]*\\$y',
    // Focus in and out (mode 1004).
    '\\x1b\\[[IO]',
    // DCS answers: XTVERSION ESC P>|name ESC\, tertiary attributes (DA3) ESC P!|id ESC\,
    // DECRQSS ESC P1$r… ESC\ and XTGETTCAP ESC P1+r… ESC\.
    '\\x1bP(?:>\\||!\\||[01]\\$r|[01]\\+r)[^\\x1b\\x07]*\\x1b\\\\',
    // Colour answers: ESC]10;rgb:ffff/ffff/ffff ESC\ (also BEL-ended), palette ESC]4;1;rgb:… .
    '\\x1b\\](?:4;[0-9]+|1[0-9]);rgb:[0-9a-fA-F/]*(?:\\x07|\\x1b\\\\)',
  ].join('|'),
  'y',
);

/** True if the chunk is nothing but one or more terminal answers (see REPLY). */
export function isTerminalReply(bytes: Uint8Array): boolean {
  // Every answer starts with ESC; a plain key does not, so the usual keystroke returns here.
  if (bytes.length < 3 || bytes[0] !== 0x1b) return false;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  REPLY.lastIndex = 0;
  while (REPLY.lastIndex < text.length) {
    if (!REPLY.test(text)) return false;
  }
  return true;
}
