import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HIDDEN_OUTPUT_DELAY_MS, HIDDEN_OUTPUT_MAX_BYTES, HiddenOutput } from '../src/components/hidden-output.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('HiddenOutput', () => {
  let written: string[];
  let acked: string[];
  const write = (data: Uint8Array, done: () => void) => {
    written.push(new TextDecoder().decode(data));
    done();
  };
  const push = (output: HiddenOutput, text: string) => output.push(bytes(text), () => acked.push(text));

  beforeEach(() => {
    vi.useFakeTimers();
    written = [];
    acked = [];
  });
  afterEach(() => vi.useRealTimers());

  it('writes at once while shown', () => {
    const output = new HiddenOutput(write, true);
    push(output, 'a');
    push(output, 'b');
    expect(written).toEqual(['a', 'b']);
    expect(acked).toEqual(['a', 'b']);
  });

  it('holds a hidden terminal’s output until the delay has passed, then writes it in order', () => {
    const output = new HiddenOutput(write, false);
    push(output, 'a');
    vi.advanceTimersByTime(HIDDEN_OUTPUT_DELAY_MS - 1);
    push(output, 'b');
    expect(written).toEqual([]);
    expect(acked).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(written).toEqual(['a', 'b']);
    expect(acked).toEqual(['a', 'b']);
  });

  it('writes what waits as soon as the terminal is shown, before anything newer', () => {
    const output = new HiddenOutput(write, false);
    push(output, 'a');
    output.shown = true;
    expect(written).toEqual(['a']);
    push(output, 'b');
    expect(written).toEqual(['a', 'b']);
    vi.advanceTimersByTime(HIDDEN_OUTPUT_DELAY_MS);
    expect(written).toEqual(['a', 'b']);
  });

  it('does not hold a flood: a quarter window waiting is written at once', () => {
    const output = new HiddenOutput(write, false);
    const chunk = 'x'.repeat(HIDDEN_OUTPUT_MAX_BYTES / 2);
    push(output, chunk);
    expect(written).toEqual([]);
    push(output, chunk);
    expect(written).toEqual([chunk, chunk]);
  });

  it('drops what waits when disposed', () => {
    const output = new HiddenOutput(write, false);
    push(output, 'a');
    output.dispose();
    vi.advanceTimersByTime(HIDDEN_OUTPUT_DELAY_MS * 2);
    expect(written).toEqual([]);
  });
});
