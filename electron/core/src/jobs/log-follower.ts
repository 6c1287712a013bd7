import { type NativeLanes, type Relay } from '@hangar/lane';
import {
  FINAL_JOB_STATES,
  HangarError,
  LaneLogAccept,
  isHangarError,
  LogBlockReader,
  toHangarError,
  type Disposable,
  type JobDetail,
  type Mux,
} from '@hangar/shared';
import { BlockQueue } from './log-blocks.js';
import {
  RECONNECT_PATIENCE_MS,
  callRetrying,
  isTransient,
  linkWithin,
  openPulledStream,
  streamError,
  type JobLink,
} from './job-link.js';
import { lanesHere, openLane, relayLaneToFd } from '../link/lanes.js';

export interface LogChunk {
  attempt: number;
  /** Byte offset of `data[0]` in the attempt's log. */
  offset: number;
  data: Uint8Array;
}

export interface LogSink {
  /**
   * Bytes in order; call `consumed()` once they are written out, which lets the agent send more.
   * The bytes are the sink's until then only: they may be in a link read buffer that goes round
   * again after (copy them to keep them).
   */
  data(chunk: LogChunk, consumed: () => void): void;
  /** A new attempt's log starts (the first one, and each retry while following). */
  attempt?(attempt: number, from: number): void;
  /** The link dropped ('reconnecting') or came back and the log resumes at the same byte ('resumed'). */
  status?(status: 'reconnecting' | 'resumed'): void;
}

export interface FollowOptions {
  /** Default: the latest attempt. */
  attempt?: number;
  /** Byte offset already held. */
  from?: number;
  /** Keep streaming until the attempt ends (else stop at the current end of the log). */
  follow: boolean;
  /** While following, go on to the next attempt when the job is retried, until its final state. */
  throughRetries?: boolean;
  /** Give up when the link stays down this long. */
  reconnectPatienceMs?: number;
  /** Stop: the host stops sending, and the follow returns where it got to (exit code null). */
  signal?: AbortSignal;
  /**
   * Write the log's bytes straight to this descriptor (the hangar command's stdout) on a lane
   * beside a direct link (lane/PROTOCOL.md, "Purposes: log"), relayed natively, when one can be
   * had; else (no direct link, no relay, HANGAR_LANES=off, refused) the sink gets them as without.
   */
  laneOut?: LaneOut;
}

export interface LaneOut {
  fd: number;
  /** Before a lane writes to `fd`: resolves once what the sink was given is written out there. */
  drained(): Promise<void>;
  /** After a lane: `bytes` were written to `fd` from log offset `at` of `attempt`. */
  wrote?(attempt: number, at: number, bytes: number): void;
  /** A lane ended short with this relay message (`writing the local side: Broken pipe`: the reader left). */
  broke?(message: string): void;
}

/** A follow's lanes that may break (each resumes from the bytes written) before it stays on the mux. */
const MAX_LANE_BREAKS = 3;

export interface LogEnd {
  attempt: number;
  /** Offset after the last byte delivered. */
  offset: number;
  /** The attempt's exit status when its log is complete; null when still running or unknown. */
  exitCode: number | null;
}

type Segment = { kind: 'end'; exitCode: number | null } | { kind: 'dropped' } | { kind: 'moved' };

/**
 * Streams one job's log to a sink: byte offsets carried across dropped links (the next request
 * asks from the last byte received, so nothing is lost or doubled), acks only for consumed bytes
 * (a slow terminal slows the host, not our memory), and retries followed as new attempts.
 */
export async function followJobLog(
  connection: JobLink,
  jobId: string,
  options: FollowOptions,
  sink: LogSink,
): Promise<LogEnd> {
  const patience = options.reconnectPatienceMs ?? RECONNECT_PATIENCE_MS;
  const retained = connection.retain();
  let attempt = options.attempt;
  let offset = options.from ?? 0;
  let announced: number | undefined;
  let dropped = false;
  let laneBreaks = 0;
  /** The attempt (-1: the latest) whose start a refused lane waited for: once each. */
  let waitedForStart: number | undefined;
  const native = options.laneOut !== undefined && connection.laneTarget !== undefined ? lanesHere() : undefined;
  try {
    for (;;) {
      if (options.signal?.aborted) return { attempt: attempt ?? 0, offset, exitCode: null };
      const mux = await linkWithin(connection, Date.now() + patience);
      const onLane =
        native !== undefined && !('unavailable' in native) && laneBreaks < MAX_LANE_BREAKS
          ? await readSegmentOnLane(mux, native, options.laneOut!)
          : undefined;
      const segment = onLane ?? (await readSegment(mux));
      // Moved to a better path: asked again there from the last byte delivered, with nothing to say.
      if (segment.kind === 'moved') continue;
      if (segment.kind === 'dropped') {
        if (!dropped) sink.status?.('reconnecting');
        dropped = true;
        continue;
      }
      const end: LogEnd = { attempt: attempt ?? 0, offset, exitCode: segment.exitCode };
      if (!options.follow || !options.throughRetries || options.signal?.aborted) return end;
      const next = await nextAttempt(connection, jobId, end.attempt, patience, options.signal);
      if (next === undefined) return end;
      attempt = next;
      offset = 0;
    }
  } finally {
    retained.dispose();
  }

  /**
   * A segment on a lane: the relay writes the log's bytes to laneOut.fd from `offset` on (this side
   * counts them: a lane that breaks resumes from the bytes written, nothing lost or doubled).
   * Undefined: no lane (refused, unreachable): the mux carries this segment, with its own errors.
   */
  async function readSegmentOnLane(mux: Mux, native: NativeLanes, out: LaneOut): Promise<Segment | undefined> {
    let lane: Awaited<ReturnType<typeof openLane>>;
    try {
      lane = await openLane(connection as Parameters<typeof openLane>[0], {
        purpose: 'log',
        id: jobId,
        ...(attempt !== undefined ? { attempt } : {}),
        from: offset,
        follow: options.follow,
      });
    } catch (error) {
      // A queued attempt has no log file yet (lane/PROTOCOL.md, "Purposes: log"): rather than
      // follow all of its log on the mux, wait for the job to run and ask for a lane again.
      const refusedForNow =
        isHangarError(error) && error.code === 'E_UNAVAILABLE' && error.details?.['lane'] === 'refused';
      if (!options.follow || !refusedForNow || waitedForStart === (attempt ?? -1)) return undefined;
      waitedForStart = attempt ?? -1;
      try {
        await waitForJob(
          connection,
          jobId,
          patience,
          (job) => job.state === 'running' || isFinal(job.state),
          options.signal,
        );
      } catch {
        // Stopped: the loop above returns where it got to. Otherwise the mux carries the segment.
        if (!options.signal?.aborted) return undefined;
      }
      return { kind: 'moved' }; // asked again, a lane or the mux, from the same offset
    }
    const accepted = LaneLogAccept.safeParse(lane.accept);
    if (!accepted.success || (attempt !== undefined && accepted.data.attempt !== attempt)) {
      lane.socket.destroy();
      return undefined;
    }
    attempt = accepted.data.attempt;
    if (announced !== attempt) {
      announced = attempt;
      sink.attempt?.(attempt, offset);
    }
    if (dropped) {
      dropped = false;
      sink.status?.('resumed');
    }
    // What the sink had goes out first: the relay writes to the same descriptor.
    await out.drained();
    // Reads nothing (EOF at once: this side sends nothing); writes what comes to a dup of the output,
    // whose flags stay (stdout is Node's too): polled or, for a file, written at once.
    const relay = relayLaneToFd(native, lane, out.fd, { localKind: 'terminal', readNothing: true });
    if (relay === undefined) return undefined;
    const stop = () => relay.close(Buffer.from(JSON.stringify({ code: 'cancelled', message: 'stopped following' })));
    options.signal?.addEventListener('abort', stop);
    // The lane lives no longer than the link it was granted beside (the agent closes it then too).
    const linkGone = mux.onClose(() =>
      relay.close(Buffer.from(JSON.stringify({ code: 'closed', message: 'link closed' }))),
    );
    let end: Awaited<Relay['ended']>;
    try {
      end = await relay.ended;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      linkGone.dispose();
    }
    // bytesIn: DATA that came off the lane and was written to stdout. The relay opens a record only
    // once the one before is written; one opened and not wholly written when the lane ends (a cut,
    // our own close at the link's end) is not counted, so the next segment asks from there (it was
    // counted and dropped: a link cut while stdout was full lost up to a record).
    const at = offset;
    offset += end.bytesIn;
    if (end.bytesIn > 0) out.wrote?.(attempt, at, end.bytesIn);
    if (options.signal?.aborted) return { kind: 'end', exitCode: null };
    if (end.how !== 'eof') {
      if (end.how === 'error') out.broke?.(end.message);
      laneBreaks++;
      if (mux.closed) return { kind: 'dropped' };
      return { kind: 'moved' }; // asked again from the bytes written (a lane, or the mux)
    }
    // The status and exit code come over the link, as the mux stream's close would carry them;
    // stopped meanwhile (the link down, say), the follow ends there, not after `patience`.
    let detail: JobDetail;
    try {
      detail = await callRetrying(
        connection,
        Date.now() + patience,
        () => connection.call('job.get', { id: jobId }),
        options.signal,
      );
    } catch (error) {
      if (options.signal?.aborted) return { kind: 'end', exitCode: null };
      throw error;
    }
    const info = detail.attempts.find((a) => a.number === attempt);
    return { kind: 'end', exitCode: info && isFinal(info.state) ? info.exit_code : null };
  }

  async function readSegment(mux: Mux): Promise<Segment> {
    // Open our end before asking: the agent may write right behind its answer. The log comes
    // compressed, in blocks; the stream counts block bytes from 0, the blocks carry log offsets.
    // Blocks not delivered yet are dropped with a stream the link moved off: the next request
    // starts at `offset`, the end of the last piece delivered, so nothing is lost or doubled.
    const { stream, closed, movedOff } = openPulledStream(connection, mux, 0, () => queue.clear());
    const blocks = new LogBlockReader({ rawPieces: true });
    let known = attempt;
    let logAt = offset;
    let failure: HangarError | undefined;
    const fail = (error: unknown) => {
      failure ??= toHangarError(error);
      queue.clear();
      stream.close({ code: failure.code, message: failure.message.slice(0, 500) });
    };
    // Blocks wait for the answer (it names the attempt), then go out as the sink keeps up.
    const queue = new BlockQueue((data, end, consumed) => {
      const at = logAt;
      logAt += data.length;
      offset = logAt;
      if (known !== announced) {
        announced = known;
        sink.attempt?.(known!, at);
      }
      sink.data({ attempt: known!, offset: at, data }, () => {
        // Also once the stream has ended: the ack then sends nothing, but gives the read buffers back.
        if (end !== undefined) stream.ack(end);
        consumed();
      });
    }, fail);
    // No block comes after the stream's close: once the last is delivered, the zlib stream can go.
    void closed.then(() => queue.delivered()).then(() => queue.close());
    const stop = () => stream.close({ code: 'cancelled', message: 'the reader stopped following' });
    options.signal?.addEventListener('abort', stop);
    void closed.then(() => options.signal?.removeEventListener('abort', stop));
    const subscription: Disposable = stream.onData((data) => {
      try {
        for (const block of blocks.push(data)) queue.push(block);
      } catch (error) {
        fail(error);
      }
    });
    try {
      const result = await connection.call('job.logs', {
        id: jobId,
        ...(attempt !== undefined ? { attempt } : {}),
        from: offset,
        follow: options.follow,
        compression: 'deflate',
        stream_id: stream.id,
      });
      if (result.compression !== 'deflate') {
        throw new HangarError('E_PROTOCOL', `the host answered a compressed log request with '${result.compression}'`);
      }
      known = attempt = result.attempt;
      if (announced !== known) {
        announced = known;
        sink.attempt?.(known, result.from);
      }
      if (dropped) {
        dropped = false;
        sink.status?.('resumed');
      }
      queue.start();
    } catch (error) {
      void subscription.dispose();
      stream.close({ code: 'cancelled', message: 'log request failed' });
      if (movedOff() && isTransient(error)) return { kind: 'moved' };
      if (mux.closed && isTransient(error)) return { kind: 'dropped' };
      throw toHangarError(error);
    }
    const reason = await closed;
    // Whole blocks that arrived are delivered before we say how the segment ended (offset is then exact).
    await unlessAborted(queue.delivered(), options.signal);
    if (failure) throw failure;
    if (movedOff() && !options.signal?.aborted && reason.code !== 'log_end') return { kind: 'moved' };
    if (options.signal?.aborted) return { kind: 'end', exitCode: null };
    if (reason.code === 'log_end') {
      if (blocks.pending > 0) throw new HangarError('E_PROTOCOL', `log of ${jobId} ended inside a block`);
      return { kind: 'end', exitCode: reason.exit_code ?? null };
    }
    if (mux.closed) return { kind: 'dropped' };
    throw streamError(`log of ${jobId}`, reason);
  }
}

/**
 * Waits for `work`, or until the signal aborts (at once if it has). Its abort listener goes with
 * the wait: a follow through retries and reconnects waits here once a segment, and each listener
 * left on the caller's signal stayed until it fired (past 10, Node warns of a leak).
 */
async function unlessAborted(work: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return work;
  if (signal.aborted) return;
  let onAbort: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (onAbort = resolve));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([work, stopped]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * After attempt `after` ended: the number of the attempt to follow next, or undefined once the
 * job is final with no newer attempt, or once `signal` fires. Waits on `job.updated` events, with
 * a slow poll in case one was missed while the link was down.
 */
export async function nextAttempt(
  connection: JobLink,
  jobId: string,
  after: number,
  patienceMs = RECONNECT_PATIENCE_MS,
  signal?: AbortSignal,
): Promise<number | undefined> {
  let detail: JobDetail;
  try {
    detail = await waitForJob(
      connection,
      jobId,
      patienceMs,
      (job) => job.attempt > after || isFinal(job.state),
      signal,
    );
  } catch (error) {
    if (signal?.aborted) return undefined;
    throw error;
  }
  return detail.attempt > after ? after + 1 : undefined;
}

/**
 * Resolves with the job once `done` holds for it (checked now, on each event, and every second).
 * Once `signal` fires it asks no more and rejects with the signal's reason (an AbortError unless
 * the caller gave another), at once, even while a call is on its way.
 */
export async function waitForJob(
  connection: JobLink,
  jobId: string,
  patienceMs: number,
  done: (job: { state: string; attempt: number }) => boolean,
  signal?: AbortSignal,
): Promise<JobDetail> {
  signal?.throwIfAborted();
  let stop: (reason: unknown) => void = () => undefined;
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => undefined); // raced below; never left unhandled when nobody raced it yet
  let wake: () => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => stop(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const events = connection.on('job.updated', ({ job }) => {
    if (job.id === jobId) wake();
  });
  try {
    for (;;) {
      const detail = await Promise.race([
        // The signal too: a call waiting for the link to come back would otherwise ask once it did.
        callRetrying(connection, Date.now() + patienceMs, () => connection.call('job.get', { id: jobId }), signal),
        stopped,
      ]);
      if (done(detail)) return detail;
      await Promise.race([
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 1000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        }),
        stopped,
      ]);
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    void events.dispose();
  }
}

export function isFinal(state: string): boolean {
  return (FINAL_JOB_STATES as readonly string[]).includes(state);
}
