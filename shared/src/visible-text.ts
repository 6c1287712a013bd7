/**
 * Characters a terminal (or a copy-paste into one) acts on instead of showing: C0 controls, DEL,
 * C1 controls (U+0080–U+009F; U+009B is a one-byte CSI for some terminals) and the Unicode bidi
 * controls, which can make text read differently from what it is ("Trojan Source").
 */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * Text that came from a host (a job's command, a session's command, a label, an error message),
 * made safe to print on the user's terminal or show as plain text: every control character is
 * written as its escape, as `git` and `ls` do — `\t`, `\n`, `\r`, else `\xHH` (ESC is `\x1b`) and
 * `\uHHHH` above U+00FF. So `ESC ]52;…BEL` cannot set the clipboard and `ESC [2J` cannot clear
 * the screen. Backslashes are left alone: this is for reading, not for parsing back.
 */
export function visibleText(text: string): string {
  return text.replace(INVISIBLE, (char) => {
    const short = SHORT[char];
    if (short !== undefined) return short;
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
