import { describe, expect, it } from 'vitest';
import { formatBytes } from '../src/format-bytes.js';
import { shellQuote } from '../src/shell-quote.js';
import { tmuxSocketNameOf } from '../src/tmux-socket.js';

describe('helpers every package shares', () => {
  it('sizes read the same everywhere: binary units with one decimal', () => {
    expect([0, 1023, 1024, 100_000, 1.5 * 1024 ** 2, 1.5 * 1024 ** 3].map(formatBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.0 KiB',
      '97.7 KiB',
      '1.5 MiB',
      '1.5 GiB',
    ]);
  });

  it('a quoted word reaches sh whole, quotes inside included', () => {
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
  });

  it('the tmux socket name is the one agents already use for a data dir (a SHA-256 of its path)', () => {
    // Computed with node:crypto: an agent updated to this code finds the tmux server it left.
    expect(tmuxSocketNameOf('/home/me/.hangar-agent')).toBe('hangar-cb2199ec7fe7');
  });
});
