import type { PublishCoreEvent } from './connection.js';

/**
 * Progress bars redraw at about this rate anyway; an upload acks every frame, so without a bound
 * a 1 GiB workspace would be tens of thousands of events on the control stream.
 */
const MIN_GAP_MS = 100;

export interface ProgressReporter {
  report(progress: { done: number; total: number }): void;
  /** Sends the last value if it was held back: the caller's bar ends where the work did. */
  flush(): void;
}

/**
 * `progress` events for a call that passed an `op_id` (none without one): the first value at once
 * (a bar needs its total), then at most one per MIN_GAP_MS, and the final one always.
 */
export function progressReporter(
  publish: PublishCoreEvent,
  opId: string | undefined,
  label: string,
): ProgressReporter | undefined {
  if (opId === undefined) return undefined;
  let sentAt = -Infinity;
  let held: { done: number; total: number } | undefined;
  const send = (progress: { done: number; total: number }) => {
    held = undefined;
    sentAt = Date.now();
    publish('progress', { op_id: opId, label, done: progress.done, total: progress.total });
  };
  return {
    report(progress) {
      if (progress.done >= progress.total || Date.now() - sentAt >= MIN_GAP_MS) send(progress);
      else held = { done: progress.done, total: progress.total };
    },
    flush() {
      if (held) send(held);
    },
  };
}
