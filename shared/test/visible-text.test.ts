import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { visibleText } from '../src/visible-text.js';

/** What a terminal would act on: C0 controls, DEL, C1 controls, bidi controls. */
const ACTED_ON = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

describe('host text shown on a terminal', () => {
  it('shows a clipboard write, a screen clear and a title change as text', () => {
    expect(visibleText('make \x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;title\x07')).toBe(
      'make \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b]0;title\\x07',
    );
    expect(visibleText('a\tb\nc\rd\x7f\u009b2J\u202eevil')).toBe('a\\tb\\nc\\rd\\x7f\\x9b2J\\u202eevil');
  });

  it('leaves printable text, unicode and backslashes as they are', () => {
    expect(visibleText('echo "héllo ✓ 日本" \\n $HOME')).toBe('echo "héllo ✓ 日本" \\n $HOME');
  });

  it('never lets a control character through, and changes nothing else', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const shown = visibleText(text);
        expect(ACTED_ON.test(shown)).toBe(false);
        if (!ACTED_ON.test(text)) expect(shown).toBe(text);
      }),
    );
  });
});
