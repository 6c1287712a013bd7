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
/** Queued bytes up to this go past a full transport (sendSmall): a keystroke, not a flood. */
const SMALL_CHUNK_BYTES = 1024;

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
  /** Streams with data and credit, in turn order (a Set keeps insertion order). */
  private readonly ready = new Set<LinkStream>();
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
   * waits to ride along, instead of after the rest of the event loop's callback. Otherwise, or on
   * a busy link, as add().
   */
  addNow(stream: LinkStream): void {
    if (this.disposed) return;
    if (this.pumpScheduled || this.ready.size > 0 || this.transport.bufferedAmount > 0) {
      // A transport that puts small frames ahead of what it holds takes one now, whatever it
      // holds (the WebRTC transport while pacing); what is left of the write goes as add().
      const small = this.transport.priorityFrameBytes;
      if (small !== undefined && small > DATA_HEAD_BYTES) {
        const limit = Math.min(small - DATA_HEAD_BYTES, stream.maxFrameBytes ?? this.options.maxDataFrameBytes);
        if (this.sendChunk(stream, limit)) this.add(stream);
        else this.ready.delete(stream);
        return;
      }
      this.add(stream);
      return;
    }
    this.ready.add(stream);
    this.pump();
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

  private pump(): void {
    keyTrace?.('pump');
    this.pumpScheduled = false;
    if (this.drainPoll !== undefined) clearTimeout(this.drainPoll);
    this.drainPoll = undefined;
    while (!this.disposed && this.ready.size > 0) {
      if (this.transport.bufferedAmount >= this.options.transportHighWater) {
        this.sendSmall();
        if (this.ready.size === 0) return;
        this.drainPoll = setTimeout(() => {
          this.drainPoll = undefined;
          this.schedule();
        }, DRAIN_POLL_MS);
        return;
      }
      const stream: LinkStream = this.ready.values().next().value!;
      this.ready.delete(stream);
      // Back of the line: the next stream with data gets the next chunk.
      if (this.sendChunk(stream, stream.maxFrameBytes ?? this.options.maxDataFrameBytes)) this.ready.add(stream);
    }
  }

  /** Hands the stream's next chunk (up to `limit` bytes) to the transport; true while it has more to send. */
  private sendChunk(stream: LinkStream, limit: number): boolean {
    const chunk = stream.takeChunk(limit);
    if (chunk) this.options.sendData(stream, chunk.offset, chunk.payload);
    stream.afterSend();
    return stream.readyToSend;
  }

  /**
   * While bulk fills the transport, streams with only a few bytes queued (a keystroke, its echo,
   * a small request) still go: a transport with an urgent lane (the byte-stream link) writes them
   * ahead of queued bulk. Each stream's window still bounds what it can have unacknowledged.
   */
  private sendSmall(): void {
    // A copy: a stream that goes back in line must not come round again in this loop.
    for (const stream of [...this.ready]) {
      if (stream.queuedBytes > SMALL_CHUNK_BYTES) continue;
      this.ready.delete(stream);
      if (this.sendChunk(stream, SMALL_CHUNK_BYTES)) this.ready.add(stream);
    }
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
 * instead of reading a clock: nothing to go wrong when the wall clock jumps, and fake timers in
 * tests need nothing else. A check runs every quarter of the shorter period, so a ping or a
 * death is noticed at most that late (1.5 s + 0.5 s with the defaults, within the 10 s budget).
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
    this.tickMs = Math.max(1, Math.min(options.intervalMs, options.deadAfterMs) / 4);
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
