import { type Disposable, type Mux } from '@hangar/shared';
import { performance } from 'node:perf_hooks';

/** A link moved off keeps running until its streams and calls are done, at most this long. */
const RETIRE_MAX_MS = 30_000;
const RETIRE_POLL_MS = 100;

/**
 * One round trip on the link's priority path (the mux's ping), in ms to a tenth; null when no
 * pong came within `timeoutMs` (the heartbeat, not this, judges whether the link is alive).
 */
export async function roundTrip(mux: Mux, timeoutMs: number): Promise<number | null> {
  const began = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
  try {
    if ((await Promise.race([mux.ping().then(() => 'pong' as const), late])) === 'late') return null;
  } finally {
    clearTimeout(timer);
  }
  return Math.round((performance.now() - began) * 10) / 10;
}

/**
 * Closes a link that was moved off once nothing runs on it any more (no open stream, no pending
 * call: terminals resumed elsewhere, answers arrived), or after RETIRE_MAX_MS whatever runs; then
 * `closed` runs (the caller disposes the link's control client). Disposing closes it at once.
 */
export function retireLink(mux: Mux, pendingCalls: () => number, closed: () => void): Disposable {
  const began = Date.now();
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearInterval(timer);
    mux.close({ code: 'closed', message: 'moved to a better path' });
    closed();
  };
  const timer = setInterval(() => {
    const idle = mux.openStreamCount === 0 && pendingCalls() === 0;
    if (idle || mux.closed || Date.now() - began >= RETIRE_MAX_MS) finish();
  }, RETIRE_POLL_MS);
  timer.unref();
  return { dispose: finish };
}
