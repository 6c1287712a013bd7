// @vitest-environment jsdom
import { Terminal } from '@xterm/xterm';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { deferTextareaSync } from '../src/components/xterm-textarea.js';

beforeAll(() => {
  // What xterm's open() asks of the window that jsdom lacks.
  window.matchMedia ??= () =>
    ({
      matches: false,
      addListener() {},
      removeListener() {},
      addEventListener() {},
      removeEventListener() {},
    }) as never;
});

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

/** The page's animation frames, run by hand: jsdom has none of its own that a test can time. */
const frames = new Map<number, FrameRequestCallback>();
let lastFrame = 0;
function runFrame() {
  const due = [...frames.values()];
  frames.clear();
  for (const callback of due) callback(performance.now());
}
beforeEach(() => {
  frames.clear();
  vi.stubGlobal('requestAnimationFrame', (callback: FrameRequestCallback) => {
    frames.set(++lastFrame, callback);
    return lastFrame;
  });
  vi.stubGlobal('cancelAnimationFrame', (id: number) => frames.delete(id));
});
afterEach(() => vi.unstubAllGlobals());

/** An open xterm whose textarea moves are counted (xterm's own move is replaced by the count). */
function countedTerminal({ focused = true } = {}) {
  const term = new Terminal({ cols: 20, rows: 5 });
  term.open(document.body.appendChild(document.createElement('div')));
  if (focused) term.focus();
  const moves = { count: 0 };
  (term as unknown as { _core: { _syncTextArea(): void } })._core._syncTextArea = () => void moves.count++;
  return { term, moves };
}

describe('deferTextareaSync', () => {
  let term: Terminal | undefined;
  afterEach(() => term?.dispose());

  it('moves the textarea in a task of its own after the write that moved the cursor, once', async () => {
    const counted = countedTerminal();
    term = counted.term;
    expect(deferTextareaSync(term)).toBe(true);
    // Two writes parsed in one task (the first would be parsed at once after a key, the rest
    // after xterm's timer): the textarea moves once, after both.
    const inCallback: number[] = [];
    await new Promise<void>((resolve) => {
      term!.write('ab', () => inCallback.push(counted.moves.count));
      term!.write('cd', () => {
        inCallback.push(counted.moves.count);
        resolve();
      });
    });
    expect(inCallback).toEqual([0, 0]);
    await Promise.resolve();
    expect(counted.moves.count).toBe(0); // not at the end of the task: after it
    await nextTask();
    expect(counted.moves.count).toBe(1);
    // And again for the next cursor move.
    await new Promise<void>((resolve) => term!.write('e', resolve));
    await nextTask();
    expect(counted.moves.count).toBe(2);
  });

  it('moves it in the next animation frame when the frame comes before the timeout, once', async () => {
    const counted = countedTerminal();
    term = counted.term;
    expect(deferTextareaSync(term)).toBe(true);
    await new Promise<void>((resolve) => term!.write('ab', resolve));
    await Promise.resolve();
    expect(counted.moves.count).toBe(0);
    // Chromium runs the frame before the timer (it defers timers after input): the move is made
    // in that frame, so it does not change the page after it (a second frame).
    runFrame();
    expect(counted.moves.count).toBe(1);
    await nextTask();
    expect(counted.moves.count).toBe(1); // the timeout was cancelled
    // And the timeout first: the frame asked for is cancelled.
    await new Promise<void>((resolve) => term!.write('c', resolve));
    await nextTask();
    expect(counted.moves.count).toBe(2);
    runFrame();
    expect(counted.moves.count).toBe(2);
  });

  it("leaves a terminal's textarea that is not focused where it is until it is focused", async () => {
    const counted = countedTerminal({ focused: false });
    term = counted.term;
    expect(deferTextareaSync(term)).toBe(true);
    // A hidden tab's output: no move, neither in a task nor in a frame.
    await new Promise<void>((resolve) => term!.write('ab\r\ncd', resolve));
    await nextTask();
    runFrame();
    expect(counted.moves.count).toBe(0);
    // Shown and focused: it catches up, once.
    term.focus();
    await nextTask();
    runFrame();
    expect(counted.moves.count).toBe(1);
    // Focused again later with no output meanwhile: nothing to move.
    term.blur();
    term.focus();
    await nextTask();
    expect(counted.moves.count).toBe(1);
  });

  it('is what xterm calls on a cursor move (without it the move is synchronous)', async () => {
    const counted = countedTerminal();
    term = counted.term;
    const inCallback = await new Promise<number>((resolve) => term!.write('ab', () => resolve(counted.moves.count)));
    expect(inCallback).toBe(1);
  });

  it('does not move the textarea of a terminal disposed before the move runs', async () => {
    term = new Terminal({ cols: 20, rows: 5 });
    term.open(document.body.appendChild(document.createElement('div')));
    term.focus();
    expect(deferTextareaSync(term)).toBe(true);
    // Output that moves the cursor, then the pane unmounts (the session ended) in the same task.
    const disposed = term;
    await new Promise<void>((resolve) =>
      disposed.write('ab', () => {
        disposed.dispose();
        resolve();
      }),
    );
    term = undefined;
    // The deferred move runs now: on a disposed xterm it would throw (its renderer is gone).
    const errors: unknown[] = [];
    const onError = (error: unknown) => errors.push(error);
    process.prependListener('uncaughtException', onError);
    try {
      await nextTask();
      runFrame();
      await nextTask();
    } finally {
      process.removeListener('uncaughtException', onError);
    }
    expect(errors).toEqual([]);
  });

  it('changes nothing on a terminal without the method', () => {
    const fake = { _core: {} } as unknown as Terminal;
    expect(deferTextareaSync(fake)).toBe(false);
  });
});
