import type { Disposable } from '../disposable.js';
import type { CloseReason } from '../protocol/control.js';
import { BULK_STREAM_WINDOW } from './stream.js';
import type { CoreApiClient, CoreCallParams } from './core-api-client.js';

/** What following a log needs of the core API (a window's component tests pass a stand-in). */
export type JobLogApi = Pick<CoreApiClient, 'call' | 'on' | 'openStream'>;

export interface JobLogSink {
  /** Log bytes of `attempt`, in order; call `done` once they are consumed: only then are they acked. */
  data(data: Uint8Array, attempt: number, done: () => void): void;
  /** An attempt's bytes start here (the first one, and each retry with through_retries). */
  attempt?(attempt: number): void;
  /** The host link dropped, or came back and the log goes on at the same byte. */
  link?(status: 'reconnecting' | 'resumed'): void;
}

export interface FollowedJobLog extends Disposable {
  /** The attempt the log starts with. */
  readonly attempt: number;
  /** How the stream ended: {code: 'log_end', exit_code} when the log did, else an error's code and message. */
  readonly ended: Promise<CloseReason>;
}

/**
 * Follows a job's log through the core (jobs.logs) on a stream of ours, for any client of it. The
 * core says where each attempt's bytes start on the stream (jobs.log_attempt, sent before them),
 * so bytes are handed on with their attempt, split exactly where a retry's log begins.
 */
export async function followCoreJobLog(
  api: JobLogApi,
  params: Omit<CoreCallParams<'jobs.logs'>, 'stream_id'>,
  sink: JobLogSink,
): Promise<FollowedJobLog> {
  // jobs.logs: the core's end uses the bulk window, and both ends of a stream share one window.
  const stream = api.openStream({ window: BULK_STREAM_WINDOW });
  // A sink is done with a piece's bytes once it called done() (they are acked then): data that
  // came in a pooled read gives its buffer back at the ack, not to the collector.
  stream.releasesDataOnAck = true;
  // Where on the stream an attempt starts or the host link dropped or came back, in the order the
  // core said so: each is handed on between the bytes before it and those after.
  const marks: { offset: number; attempt?: number; link?: 'reconnecting' | 'resumed' }[] = [];
  let attempt = 0;
  let received = 0;
  const passMark = (): void => {
    const mark = marks.shift()!;
    if (mark.attempt !== undefined) {
      attempt = mark.attempt;
      sink.attempt?.(attempt);
    } else sink.link?.(mark.link!);
  };
  const subscriptions: Disposable[] = [
    api.on('jobs.log_attempt', (event) => {
      if (event.stream_id === stream.id) marks.push({ offset: event.stream_offset, attempt: event.attempt });
    }),
    api.on('jobs.log_link', (event) => {
      if (event.stream_id !== stream.id) return;
      // The core's event overtakes the bytes still on their way: said once they are handed on.
      marks.push({ offset: event.stream_offset ?? received, link: event.status });
      while (marks.length > 0 && marks[0]!.offset <= received) passMark();
    }),
  ];
  const stop = () => {
    for (const subscription of subscriptions.splice(0)) void subscription.dispose();
  };
  stream.onData((data, offset) => {
    // Not copied: a pooled read's buffer is held until the ack (releasesDataOnAck).
    const bytes = data;
    received = offset + bytes.length;
    let at = 0;
    while (at < bytes.length) {
      while (marks.length > 0 && marks[0]!.offset <= offset + at) passMark();
      const end = marks.length > 0 ? Math.min(bytes.length, marks[0]!.offset - offset) : bytes.length;
      const piece = bytes.subarray(at, end);
      const ackAt = offset + end;
      // Also after the stream closed: nothing is sent then, but the read buffers go back to the pool.
      sink.data(piece, attempt, () => stream.ack(ackAt));
      at = end;
    }
  });
  const ended = new Promise<CloseReason>((resolve) =>
    stream.onClose((reason) => {
      // An attempt that starts at the very end (an empty retry) is still announced.
      while (marks.length > 0) passMark();
      stop();
      resolve(reason);
    }),
  );
  try {
    const answer = await api.call('jobs.logs', { ...params, stream_id: stream.id });
    return {
      attempt: answer.attempt,
      ended,
      dispose: () => {
        stop();
        stream.close({ code: 'closed', message: 'log closed' }, { flush: false });
      },
    };
  } catch (error) {
    stop();
    stream.close({ code: 'closed', message: 'jobs.logs failed' }, { flush: false });
    throw error;
  }
}
