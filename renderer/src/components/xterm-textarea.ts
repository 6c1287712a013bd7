import type { Terminal } from '@xterm/xterm';

/** The private part of xterm's Terminal this reaches into (xterm 6: CoreBrowserTerminal). */
interface XtermCore {
  _syncTextArea?: () => void;
}

/**
 * xterm moves its hidden textarea to the cursor (where an IME shows its candidates) on every
 * cursor move, inside the task that parses the output: for a key's echo, in the page's WebSocket
 * message. The animation frame that draws the echo comes about a millisecond after that task
 * ends (in `bench:ui`, work added to the task delayed the frame by as much), and the move is
 * 0.1–0.25 ms of it in profiles on this machine (style writes on the focused textarea; most of it
 * is asking for a frame, which xterm's requestAnimationFrame then pays instead). Deferred out of
 * that task, the message's task ends sooner. It runs in whichever comes first: a task of its own
 * right after (a zero timeout) or the next animation frame, after xterm's own frame callback (the
 * one that draws the output). Chromium often runs the frame first (it defers timers after input):
 * a move in a timeout after the frame changed the page again and cost a second frame of its own
 * (2–3 ms of the page's main thread, in 40–60% of keys in `bench:ui`). Several moves before it
 * runs move the textarea once, to where the cursor is then. Deferred to a microtask instead (the
 * same task) the frame came later; to the frame alone, later at 50 ms pauses.
 *
 * Only a focused terminal's textarea is moved (an IME only composes in the focused one); a
 * terminal that is not focused, e.g. a hidden tab's, catches up when its textarea is focused.
 * Returns false (and changes nothing) if this xterm has no such method, e.g. after an upgrade
 * (renderer/test/xterm-textarea.test.tsx then fails).
 */
export function deferTextareaSync(term: Terminal): boolean {
  const core = (term as unknown as { _core?: XtermCore })._core;
  const sync = core?._syncTextArea;
  if (!core || typeof sync !== 'function') return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let frame: number | undefined;
  /** A move skipped while the textarea was not focused. */
  let stale = false;
  let disposed = false;
  const run = () => {
    if (timer !== undefined) clearTimeout(timer);
    if (frame !== undefined) cancelAnimationFrame(frame);
    timer = frame = undefined;
    sync.call(core);
  };
  core._syncTextArea = () => {
    if (timer !== undefined || disposed) return;
    const textarea = term.textarea;
    if (textarea && textarea.ownerDocument.activeElement !== textarea) {
      stale = true;
      return;
    }
    stale = false;
    timer = setTimeout(run);
    // Asked for once the parse's task has run on (a microtask), so that xterm's own frame
    // callback, asked for after the cursor move, draws the output first.
    queueMicrotask(() => {
      if (timer !== undefined && frame === undefined) frame = requestAnimationFrame(run);
    });
  };
  const onFocus = () => {
    if (stale && !disposed) core._syncTextArea!();
  };
  term.textarea?.addEventListener('focus', onFocus);
  // A move still to come when the terminal is disposed (output, then the pane unmounts in the
  // same task) would run on a disposed xterm, whose renderer is gone (a TypeError): dropped.
  const dispose = term.dispose.bind(term);
  term.dispose = () => {
    disposed = true;
    if (timer !== undefined) clearTimeout(timer);
    if (frame !== undefined) cancelAnimationFrame(frame);
    timer = frame = undefined;
    term.textarea?.removeEventListener('focus', onFocus);
    dispose();
  };
  return true;
}
