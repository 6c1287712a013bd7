/** When things go out on the link: data turns between streams, and pings when it is quiet. */
import type { Disposable } from '../disposable.js';
import type { LinkStream } from './stream.js';
import type { FrameTransport } from './transport.js';
import { DATA_HEAD_BYTES } from '../frames.js';
import { keyTrace } from './key-trace.js';

/**
 * While data waits for the transport to drain, look again this often: a transport's own idea of
 * "high" may be above ours (the WebSocket adapter fires onDrain only after exceeding 64 KiB),
 * and a missed drain must cost milliseconds, not a stuck stream.
 */
const DRAIN_POLL_MS = 20;

const resolved = Promise.resolve();

export interface SchedulerOptions {
  maxDataFrameBytes: number;
  transportHighWater: number;
  /** Hands one data frame to the transport. */
  sendData(stream: LinkStream, offset: number, payload: Uint8Array): void;
}

/**
 * Decides which stream's bytes go next. Round-robin, one chunk per stream per turn, and only
 * while the transport holds less than transportHighWater: a `yes` flood can have at most about
 * that much (plus one chunk) queued ahead of a keystroke on another stream.
 */
export class DataScheduler implements Disposable {
  /** Streams with data and credit, in turn order. */
  private readonly ready = new TurnQueue();
  private pumpScheduled = false;
  private drainPoll: unknown;
  private disposed = false;

  constructor(
    private readonly transport: FrameTransport,
    private readonly options: SchedulerOptions,
  ) {}

  /** The stream has bytes and credit: give it a turn. */
  add(stream: LinkStream): void {
    if (this.disposed) return;
    this.ready.add(stream);
    this.schedule();
  }

  /**
   * The stream has bytes that should leave at once (a keystroke, its echo): on a quiet link (no
   * other stream waiting, nothing buffered) they are framed and written now, with any ack that
   * waits to ride along, instead of after the rest of the event loop's callback. Otherwise as
   * add(): on a busy link the pump hands them to the transport's priority lane, if it has one
   * (sendSmall).
   */
  addNow(stream: LinkStream): void {
    if (this.disposed) return;
    if (this.pumpScheduled || this.ready.size > 0 || this.transport.bufferedAmount > 0) {
      this.add(stream);
      return;
    }
    // This stream alone, framed now (no turn in line: nothing else waits), then written.
    this.transport.willFlush?.();
    keyTrace?.('pump');
    while (!this.disposed && this.sendChunk(stream, stream.maxFrameBytes ?? this.options.maxDataFrameBytes)) {
      // More than a frame's worth, or over the transport's high-water mark: the rest takes turns.
      if (this.transport.bufferedAmount >= this.options.transportHighWater) {
        this.add(stream);
        break;
      }
    }
    this.transport.flush?.();
  }

  remove(stream: LinkStream): void {
    this.ready.delete(stream);
  }

  /** Runs a pump soon, e.g. after the transport drained. */
  schedule(): void {
    if (this.pumpScheduled || this.disposed || this.ready.size === 0) return;
    // A microtask, so the writes of one turn of the event loop share frames and control frames
    // sent in the same turn still go first.
    // A promise reaction, not queueMicrotask: in Node that wraps each callback in an
    // AsyncResource (an object, a bound function and async-id bookkeeping per request of a
    // preview). pump() catches what it could throw (sendData closes the link instead).
    this.pumpScheduled = true;
    void resolved.then(this.pumpSoon);
  }

  dispose(): void {
    this.disposed = true;
    this.ready.clear();
    if (this.drainPoll !== undefined) clearTimeout(this.drainPoll);
    this.drainPoll = undefined;
  }

  private readonly pumpSoon = (): void => this.pump();

  private readonly drainPollFired = (): void => {
    this.drainPoll = undefined;
    this.schedule();
  };

  private pump(): void {
    keyTrace?.('pump');
    this.pumpScheduled = false;
    while (!this.disposed && this.ready.size > 0) {
      if (this.transport.bufferedAmount >= this.options.transportHighWater) {
        this.sendSmall();
        if (this.ready.size === 0) return;
        // Armed once, not cleared by the pumps that come before it: a busy preview's agent went
        // high at most of its pumps, and set and cleared a timer at each. Early, it only pumps.
        this.drainPoll ??= setTimeout(this.drainPollFired, DRAIN_POLL_MS);
        return;
      }
      const stream = this.ready.shift();
      // Back of the line: the next stream with data gets the next chunk.
      if (this.sendChunk(stream, stream.maxFrameBytes ?? this.options.maxDataFrameBytes)) this.ready.add(stream);
    }
  }

  /** Hands the stream's next chunk (up to `limit` bytes) to the transport; true while it has more to send. */
  private sendChunk(stream: LinkStream, limit: number): boolean {
    const offset = stream.sentOffset;
    const payload = stream.takeChunk(limit);
    if (payload) this.options.sendData(stream, offset, payload);
    stream.afterSend();
    return stream.readyToSend;
  }

  /**
   * While bulk fills the transport, a stream whose whole queue fits one frame of the transport's
   * priority lane (a keystroke, its echo, a small request) still goes: the transport writes it
   * ahead of the bulk it holds (FrameTransport.priorityFrameBytes). A transport without a lane
   * gets nothing more here: there, small frames wait for the drain like bulk. Each stream's
   * window still bounds what it can have unacknowledged.
   */
  private sendSmall(): void {
    const lane = this.transport.priorityFrameBytes;
    if (lane === undefined || lane <= DATA_HEAD_BYTES) return;
    const limit = lane - DATA_HEAD_BYTES;
    // A copy: a stream that goes back in line must not come round again in this loop.
    for (const stream of this.ready.snapshot()) {
      if (stream.queuedBytes > Math.min(limit, stream.maxFrameBytes ?? this.options.maxDataFrameBytes)) continue;
      this.ready.delete(stream);
      if (this.sendChunk(stream, limit)) this.ready.add(stream);
    }
  }
}

/**
 * The streams waiting for a turn, in order: an array, and a mark on each stream saying it is in
 * it. A Set did the same, but emptied and filled again at every pump (32 streams of a busy
 * preview) its table shrank and grew: a new table several times per request.
 */
class TurnQueue {
  private items: LinkStream[] = [];

  get size(): number {
    return this.items.length;
  }

  /** At the back, unless it is already waiting (then it keeps its place). */
  add(stream: LinkStream): void {
    if (stream.waitsForTurn) return;
    stream.waitsForTurn = true;
    this.items.push(stream);
  }

  delete(stream: LinkStream): void {
    if (!stream.waitsForTurn) return;
    stream.waitsForTurn = false;
    const at = this.items.indexOf(stream);
    if (at >= 0) this.items.splice(at, 1);
  }

  /** The first in line, taken out of it (the queue must not be empty). */
  shift(): LinkStream {
    const stream = this.items.shift()!;
    stream.waitsForTurn = false;
    return stream;
  }

  /** The streams in line now, in order (a copy). */
  snapshot(): LinkStream[] {
    return this.items.slice();
  }

  clear(): void {
    for (const stream of this.items) stream.waitsForTurn = false;
    this.items = [];
  }
}

export interface HeartbeatOptions {
  intervalMs: number;
  deadAfterMs: number;
  sendPing(nonce: number): void;
  /** Nothing arrived for deadAfterMs. */
  onSilence(): void;
}

/**
 * Pings when this side has been quiet, and notices when the peer has been. Counts elapsed checks
 * instead of reading a clock: nothing to go wrong when the wall clock jumps, fake timers in tests
 * need nothing else, and no clock is read per frame on a keystroke's path. A check runs every half
 * of the shorter period, so a ping leaves 2-3 s after this side's last frame and a death is
 * noticed 6-7 s after the peer's (defaults; within the 10 s budget, and a ping at most 3 s apart
 * well inside the peer's 6 s). Each check is a wake-up of a process that may be waiting for a
 * person's next key: it was every quarter period (0.4 wake-ups per key on each end of a link at
 * 200 ms between keys), now every half.
 */
export class Heartbeat implements Disposable {
  private readonly tickMs: number;
  private readonly timer: unknown;
  private sentSinceTick = false;
  private receivedSinceTick = false;
  private idleMs = 0;
  private silentMs = 0;
  private nonce = 0;

  constructor(private readonly options: HeartbeatOptions) {
    this.tickMs = Math.max(1, Math.min(options.intervalMs, options.deadAfterMs) / 2);
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  sent(): void {
    this.sentSinceTick = true;
  }

  received(): void {
    this.receivedSinceTick = true;
  }

  dispose(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    this.silentMs = this.receivedSinceTick ? 0 : this.silentMs + this.tickMs;
    this.receivedSinceTick = false;
    if (this.silentMs >= this.options.deadAfterMs) {
      this.dispose();
      this.options.onSilence();
      return;
    }
    this.idleMs = this.sentSinceTick ? 0 : this.idleMs + this.tickMs;
    this.sentSinceTick = false;
    if (this.idleMs >= this.options.intervalMs) {
      this.idleMs = 0;
      this.nonce = this.nonce >= Number.MAX_SAFE_INTEGER ? 0 : this.nonce + 1;
      this.options.sendPing(this.nonce);
    }
  }
}
