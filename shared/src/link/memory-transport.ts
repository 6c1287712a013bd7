import { Emitter, type Disposable } from '../disposable.js';
import type { CloseReason } from '../protocol/control.js';
import type { FrameTransport } from './transport.js';

export interface MemoryTransportOptions {
  /** Delay of each delivery batch; 0 still delivers asynchronously (setTimeout 0), like a socket. */
  latencyMs?: number;
  /** bufferedAmount at or above which the transport counts as high; onDrain fires once it falls below. */
  highWater?: number;
  /** Bytes moved per delivery batch (at least one frame): a slow link. Unlimited by default. */
  bytesPerBatch?: number;
  /**
   * Schedules a delivery instead of setTimeout(latencyMs). A timer costs about a millisecond per
   * hop even at 0; a link inside one process (the hangar command and its core) passes Node's
   * setImmediate, so a keystroke's two hops add microseconds, and I/O still gets its turn.
   */
  schedule?: (deliver: () => void) => void;
}

/** One end of an in-process link, for tests and for wiring two components in one process. */
export interface MemoryTransport extends FrameTransport {
  /** Frames this end sends stop arriving (they stay buffered), without any close: a dead route. */
  silence(): void;
  /** Deliver again, starting with what was held back. */
  resume(): void;
  /** Frames this end has handed to send(), for tests that count what went out. */
  readonly framesSent: number;
}

export type MemoryTransportPair = readonly [MemoryTransport, MemoryTransport] & {
  /** Both directions go silent (a network partition): only heartbeats can notice. */
  silence(): void;
  resume(): void;
  /** Abrupt close of both ends at once, dropping whatever was still buffered. */
  cut(reason?: CloseReason): void;
};

const DEFAULT_HIGH_WATER = 16 * 1024;
/** Marks a delivery scheduled through `schedule` (nothing to cancel: a late one finds nothing to do). */
const SCHEDULED = Symbol('scheduled');

class MemoryEnd implements MemoryTransport {
  peer!: MemoryEnd;
  framesSent = 0;
  private readonly frames = new Emitter<Uint8Array>();
  private readonly drains = new Emitter<void>();
  private readonly closes = new Emitter<CloseReason>();
  private outbox: Uint8Array[] = [];
  private buffered = 0;
  private high = false;
  private silenced = false;
  private timer: unknown;
  private closeReason: CloseReason | undefined;
  /** Set by close(): the peer closes after what was sent before it has arrived, like a WebSocket. */
  private closeAfterFlush: CloseReason | undefined;

  constructor(private readonly options: Required<Omit<MemoryTransportOptions, 'schedule'>> & MemoryTransportOptions) {}

  readonly onFrame = (listener: (frame: Uint8Array) => void): Disposable => this.frames.event(listener);
  readonly onDrain = (listener: () => void): Disposable => this.drains.event(listener);
  readonly onClose = (listener: (reason: CloseReason) => void): Disposable => this.closes.event(listener);

  get bufferedAmount(): number {
    return this.buffered;
  }
  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  send(frame: Uint8Array): void {
    // Like a WebSocket: sending on a closed socket does nothing, the close was already reported.
    if (this.closed) return;
    this.framesSent += 1;
    this.outbox.push(frame);
    this.buffered += frame.length;
    if (this.buffered >= this.options.highWater) this.high = true;
    this.scheduleDelivery();
  }

  close(reason: CloseReason = { code: 'closed', message: 'closed by this side' }): void {
    if (this.closed) return;
    this.closeAfterFlush = reason;
    this.finish(reason);
    this.scheduleDelivery();
  }

  silence(): void {
    this.silenced = true;
  }

  resume(): void {
    this.silenced = false;
    this.scheduleDelivery();
  }

  /** Closes this end now, dropping its outbox. */
  cut(reason: CloseReason): void {
    this.outbox = [];
    this.buffered = 0;
    this.closeAfterFlush = undefined;
    if (this.timer !== undefined && this.timer !== SCHEDULED) clearTimeout(this.timer);
    this.timer = undefined;
    this.finish(reason);
  }

  private finish(reason: CloseReason): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.closes.fire(reason);
    this.frames.dispose();
    this.drains.dispose();
    this.closes.dispose();
  }

  private scheduleDelivery(): void {
    if (this.timer !== undefined || this.silenced) return;
    if (this.outbox.length === 0 && this.closeAfterFlush === undefined) return;
    const run = () => {
      this.timer = undefined;
      this.deliver();
    };
    if (this.options.schedule) {
      this.timer = SCHEDULED;
      this.options.schedule(run);
    } else {
      this.timer = setTimeout(run, this.options.latencyMs);
    }
  }

  private deliver(): void {
    if (this.silenced) return;
    let budget = this.options.bytesPerBatch;
    const batch: Uint8Array[] = [];
    while (this.outbox.length > 0 && (batch.length === 0 || budget >= this.outbox[0]!.length)) {
      const frame = this.outbox.shift()!;
      budget -= frame.length;
      this.buffered -= frame.length;
      batch.push(frame);
    }
    // Listener errors are not caught: in a test they must fail loudly, not vanish.
    for (const frame of batch) {
      if (this.peer.closed) break;
      this.peer.frames.fire(frame);
    }
    if (this.high && this.buffered < this.options.highWater && !this.closed) {
      this.high = false;
      this.drains.fire();
    }
    if (this.outbox.length > 0) {
      this.scheduleDelivery();
    } else if (this.closeAfterFlush !== undefined) {
      const reason = this.closeAfterFlush;
      this.closeAfterFlush = undefined;
      this.peer.finish(reason);
    }
  }
}

/**
 * Two connected in-memory FrameTransports with asynchronous delivery and a bufferedAmount that
 * grows on send and shrinks when a batch is delivered, so flow control behaves as over a socket.
 * `const [client, agent] = createMemoryTransportPair()`; `pair.cut()` to end both.
 */
export function createMemoryTransportPair(options: MemoryTransportOptions = {}): MemoryTransportPair {
  const resolved = {
    latencyMs: options.latencyMs ?? 0,
    highWater: options.highWater ?? DEFAULT_HIGH_WATER,
    bytesPerBatch: options.bytesPerBatch ?? Number.POSITIVE_INFINITY,
    ...(options.schedule ? { schedule: options.schedule } : {}),
  };
  const a = new MemoryEnd(resolved);
  const b = new MemoryEnd(resolved);
  a.peer = b;
  b.peer = a;
  return Object.assign([a, b] as const, {
    silence: () => {
      a.silence();
      b.silence();
    },
    resume: () => {
      a.resume();
      b.resume();
    },
    cut: (reason: CloseReason = { code: 'E_UNAVAILABLE', message: 'connection lost' }) => {
      a.cut(reason);
      b.cut(reason);
    },
  });
}
