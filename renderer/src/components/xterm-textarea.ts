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
 * is asking for a frame, which xterm's requestAnimationFrame then pays instead). Deferred to
 * a task of its own right after (a zero timeout: before the frame, which is still on its way), the
 * message's task ends sooner. Several moves before it runs move the textarea once, to where the
 * cursor is then. Deferred to a microtask instead (the same task) the frame came later; to the
 * frame itself, later at 50 ms pauses. Returns false (and changes nothing) if this xterm has no
 * such method, e.g. after an upgrade (renderer/test/xterm-textarea.test.tsx then fails).
 */
export function deferTextareaSync(term: Terminal): boolean {
  const core = (term as unknown as { _core?: XtermCore })._core;
  const sync = core?._syncTextArea;
  if (!core || typeof sync !== 'function') return false;
  let queued: ReturnType<typeof setTimeout> | undefined;
  const run = () => {
    queued = undefined;
    sync.call(core);
  };
  core._syncTextArea = () => {
    if (queued !== undefined) return;
    queued = setTimeout(run);
  };
  // A move still to come when the terminal is disposed (output, then the pane unmounts in the
  // same task) would run on a disposed xterm, whose renderer is gone (a TypeError): dropped.
  const dispose = term.dispose.bind(term);
  term.dispose = () => {
    if (queued !== undefined) clearTimeout(queued);
    queued = undefined;
    dispose();
  };
  return true;
}
