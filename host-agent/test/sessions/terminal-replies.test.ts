import { Terminal } from '@xterm/headless';
import { describe, expect, it } from 'vitest';
import { isTerminalReply } from '../../src/sessions/terminal-replies.js';

const bytes = (text: string) => Buffer.from(text, 'latin1');
const ESC = '\x1b';

/** What a terminal emulator sends as keys: plain and Alt-modified characters, cursor and function keys. */
function keys(): string[] {
  const all: string[] = [];
  for (let c = 0; c < 0x80; c++) {
    all.push(String.fromCharCode(c), ESC + String.fromCharCode(c));
  }
  // Cursor keys, Home/End, F1-F4 (SS3 and CSI forms) with every xterm modifier (2-8), Shift-Tab.
  for (const final of 'ABCDHFPQRSZ') {
    all.push(`${ESC}[${final}`, `${ESC}O${final}`);
    for (let m = 2; m <= 8; m++) all.push(`${ESC}[1;${m}${final}`);
  }
  // Insert/Delete/PgUp/PgDn, F5-F12, with and without modifiers.
  for (const n of [2, 3, 5, 6, 15, 17, 18, 19, 20, 21, 23, 24]) {
    all.push(`${ESC}[${n}~`);
    for (let m = 2; m <= 8; m++) all.push(`${ESC}[${n};${m}~`);
  }
  // Mouse reports (a click in the view), a bracketed paste, a line typed or pasted at once.
  all.push(`${ESC}[<0;10;5M`, `${ESC}[<0;10;5m`, `${ESC}[M !!`, `${ESC}[200~ls -la${ESC}[201~`, 'echo hi\r');
  return all;
}

describe('terminal replies', () => {
  it("are what xterm.js answers to tmux's and programs' queries", async () => {
    const terminal = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    const answers: string[] = [];
    terminal.onData((data) => answers.push(data));
    // DA1, DA2, XTVERSION, colours, a mode, a setting (DECRQSS), the status report.
    const queries = `${ESC}[c${ESC}[>c${ESC}[>q${ESC}]11;?\x07${ESC}[?2026$p${ESC}P$qm${ESC}\\${ESC}[5n`;
    await new Promise<void>((resolve) => terminal.write(queries, resolve));
    expect(answers.length).toBeGreaterThanOrEqual(4);
    for (const answer of answers) expect(isTerminalReply(bytes(answer)), JSON.stringify(answer)).toBe(true);
    // Several answers in one chunk are still answers.
    expect(isTerminalReply(bytes(answers.join('')))).toBe(true);
  });

  it('include the answers other terminals and tmux give', () => {
    for (const answer of [
      `${ESC}[>84;0;0c`, // tmux's DA2
      `${ESC}[?62;22c`,
      `${ESC}P>|XTerm(390)${ESC}\\`,
      `${ESC}P>|tmux 3.4${ESC}\\`,
      `${ESC}P!|00000000${ESC}\\`,
      `${ESC}P1+r524742${ESC}\\`,
      `${ESC}]10;rgb:ffff/ffff/ffff${ESC}\\`,
      `${ESC}]11;rgb:1e1e/1e1e/1e1e\x07`,
      `${ESC}]4;1;rgb:cdcd/0000/0000\x07`,
      `${ESC}[I`,
      `${ESC}[O`,
    ]) {
      expect(isTerminalReply(bytes(answer)), JSON.stringify(answer)).toBe(true);
    }
  });

  it('never include a key, nor a key with an answer in the same chunk, nor a cut-off answer', () => {
    const typed = keys();
    expect(typed.filter((key) => isTerminalReply(bytes(key)))).toEqual([]);
    const answer = `${ESC}[>0;276;0c`;
    for (const key of ['a', '\r', `${ESC}[A`, ESC]) {
      expect(isTerminalReply(bytes(answer + key)), JSON.stringify(answer + key)).toBe(false);
      expect(isTerminalReply(bytes(key + answer)), JSON.stringify(key + answer)).toBe(false);
    }
    for (let cut = 1; cut < answer.length; cut++) expect(isTerminalReply(bytes(answer.slice(0, cut)))).toBe(false);
    // A cursor position report looks like Shift-F3 (ESC[1;2R): it is typing.
    expect(isTerminalReply(bytes(`${ESC}[12;40R`))).toBe(false);
  });
});
