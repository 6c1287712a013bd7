import { Emitter, toDisposable, type Disposable } from '../disposable.js';
import { HangarError, toHangarError } from '../errors.js';
import type { CloseReason } from '../protocol/control.js';
import { keyTrace } from './key-trace.js';
import type { ReadLease } from './read-lease.js';

const noRelease = (): void => undefined;

export const DEFAULT_STREAM_WINDOW = 256 * 1024;

/**
 * For bulk transfers (job logs, workspace uploads, artifacts): both ends must open the stream with
 * it. 256 KiB caps a stream at window / round trip, ~35 MB/s for a job log on loopback; 4 MiB
 * measured 126 MB/s. Terminals keep the small window: less is queued ahead of a keystroke's echo.
 */
export const BULK_STREAM_WINDOW = 4 * 1024 * 1024;
/**
 * Frame size for bulk senders: per-frame costs (framing, TLS record, syscall) spread over more
 * bytes. Opt-in per stream: a frame this size can sit ahead of a keystroke's echo on a slow link.
 */
export const BULK_FRAME_BYTES = 256 * 1024;

/** Writes smaller than this are joined into one frame; bigger ones go as they are, uncopied. */
const MERGE_BELOW_BYTES = 8 * 1024;

/** Longest an ack of less than a quarter window waits to be merged with the next ones. */
export const ACK_DELAY_MS = 5;

/**
 * Ack delay for a terminal's output (LinkStream.ackDelayMs): longer than a person's pause between
 * keys, so the acks of echoes travel with the next keystroke instead of waking both ends for a
 * frame of their own. More than a quarter window is still acked at once.
 */
export const TERMINAL_OUTPUT_ACK_DELAY_MS = 1000;

/**
 * Ack delay for a terminal's input on the host (the keys the client typed). Each key's ack rides
 * its echo, and an armed timer covers the keys typed before it fires: with ACK_DELAY_MS the agent
 * set a timer for every key at a person's pace and woke 5 ms later with nothing to send; with
 * this, one per 500 ms of typing. A key with no echo (a password) is acked within twice this,
 * well inside the 2 s the core waits for the host to take the keys typed before `hangar attach`
 * moves a terminal off it.
 */
export const TERMINAL_INPUT_ACK_DELAY_MS = 500;

/**
 * A listener failed where there is nobody to return the error to (the stream or link is already
 * closed, and we are inside a transport callback). Rethrown on its own so it surfaces as an
 * uncaught error instead of vanishing or unwinding the transport.
 */
export function reportLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** What a stream needs from the mux that owns it. Internal: callers only see LinkStream. */
export interface StreamHost {
  /** Sends a priority frame (ack or close) at once, ahead of queued data. */
  sendAck(stream: number, offset: number): void;
  sendClose(stream: number, reason: CloseReason): void;
  /** The stream has bytes it may send now: give it a turn in the round-robin. */
  wantsToSend(stream: LinkStream): void;
  /** The same, for bytes that should leave at once when the link is quiet (DataScheduler.addNow). */
  wantsToSendNow(stream: LinkStream): void;
  /** The stream is finished on this side: forget it. */
  release(stream: LinkStream): void;
}

export interface StreamOptions {
  id: number;
  /** Largest data frame this stream sends; bulk streams use bigger frames (fewer per byte). */
  maxFrameBytes?: number;
  sendOffset: number;
  recvOffset: number;
  window: number;
}

/**
 * One direction-pair of bytes inside the link, with its own credit window. Offsets are absolute
 * positions in the stream, so a resumed stream (terminal output after a reconnect) keeps counting.
 */
export class LinkStream {
  readonly id: number;
  readonly window: number;
  readonly maxFrameBytes: number | undefined;
  /** Default true: ack as soon as onData listeners return. False: the consumer calls ack(). */
  autoAck = true;
  /**
   * Longest an ack of less than a quarter window waits (ACK_DELAY_MS by default). Data this side
   * sends on the stream takes a waiting ack along (a terminal's echo acks its keystroke), so a
   * terminal can wait longer than a person's pause between keys: no wake-up for an ack alone.
   */
  ackDelayMs = ACK_DELAY_MS;
  /**
   * Default true: data this side sends takes a waiting ack along (in the same write), so a
   * terminal's echo acks its keystroke. False: a waiting ack leaves on its timer (ackDelayMs) or
   * once a quarter window is consumed, whatever this side sends meanwhile. For request/response
   * traffic (a preview under load) that is one frame per message instead of two, and one timer per
   * ackDelayMs instead of one per message.
   */
  ackRidesData = true;
  /**
   * Default false. True: every onData listener promises to hold the lease it gets with the data
   * (ReadLease.hold) for as long as it needs the bytes after it returns, so the link's read buffer
   * can be used again once they are done (a spliced socket's write). False: data that came in a
   * pooled read keeps that buffer from the pool (listeners may keep views as long as they like),
   * unless releasesDataOnAck.
   */
  borrowsData = false;
  /**
   * Default false. True, with autoAck false: acking an offset says the consumer is done with every
   * byte before it and keeps no view of them (a file writer acks once the bytes are written). Data
   * that came in a pooled read (ReadLease) then holds that buffer only until it is acked, and the
   * buffer goes round again, instead of being left to the collector: a bulk stream (a job log, an
   * artifact) replaced every 16 KiB read with a fresh buffer, external memory that V8 counts toward
   * its next mark-compact (about 3 per 100 MB received). Listeners get no lease: the stream holds it.
   * Acks go on releasing after the stream is closed (the last file writes of a download finish
   * after its end came); bytes never acked keep their buffers out of the pool.
   */
  releasesDataOnAck = false;
  /** @internal The stream is in its link's line for a turn to send (DataScheduler). */
  waitsForTurn = false;

  /**
   * onData's listeners, called with the data's arguments as they are: no event object, no wrapper
   * per listener (one of each per request of a busy preview).
   */
  private dataListeners: ((data: Uint8Array, offset: number, lease?: ReadLease) => void)[] = [];
  private readonly drainEmitter = new Emitter<void>();
  private readonly ackEmitter = new Emitter<number>();
  private readonly closeEmitter = new Emitter<CloseReason>();
  readonly onData = (listener: (data: Uint8Array, offset: number, lease?: ReadLease) => void): Disposable => {
    // A copy, so a listener added or removed while data is delivered changes only the next delivery.
    this.dataListeners = [...this.dataListeners, listener];
    return toDisposable(() => {
      this.dataListeners = this.dataListeners.filter((other) => other !== listener);
    });
  };
  readonly onDrain = this.drainEmitter.event;
  readonly onAck = this.ackEmitter.event;
  /** Fires once. A listener that throws is reported asynchronously so the others still run. */
  readonly onClose = (listener: (reason: CloseReason) => void): Disposable =>
    this.closeEmitter.event((reason) => {
      try {
        listener(reason);
      } catch (error) {
        reportLater(error);
      }
    });

  private queue: Uint8Array[] = [];
  private queued = 0;
  private sent: number;
  private peerAcked: number;
  private received: number;
  private ackedByUs: number;
  private ackFramePending = false;
  private ackTimer: unknown;
  /** The waiting ack leaves at the end of this microtask (urgent). */
  private ackSoon = false;
  /** An ack rode data since the running ack timer was armed. */
  private ackRode = false;
  private lastAckSent: number;
  private writerWaiting = false;
  private closeReason: CloseReason | undefined;
  /** Set while a locally closed stream still flushes its queue before the close frame. */
  private flushThenClose: CloseReason | undefined;
  private released = false;
  /**
   * Leases held for releasesDataOnAck, in stream order from heldHead on: each is released once
   * the stream offset after its bytes (heldEnds) is acked.
   */
  private heldEnds: number[] = [];
  private heldReleases: (() => void)[] = [];
  private heldHead = 0;

  constructor(
    private readonly host: StreamHost,
    options: StreamOptions,
  ) {
    this.id = options.id;
    this.window = options.window;
    this.maxFrameBytes = options.maxFrameBytes;
    this.sent = this.peerAcked = options.sendOffset;
    this.received = this.ackedByUs = this.lastAckSent = options.recvOffset;
  }

  get sentOffset(): number {
    return this.sent;
  }
  get peerAckedOffset(): number {
    return this.peerAcked;
  }
  get recvOffset(): number {
    return this.received;
  }
  /** Bytes accepted by write() that have not been handed to the transport yet. */
  get queuedBytes(): number {
    return this.queued;
  }
  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /**
   * Queues the bytes, copied (a caller may reuse its buffer once write returns) unless
   * `transfer` says the caller hands them over and will not touch them again. Returns false
   * once queued plus unacknowledged bytes reach the window: wait for onDrain before writing more,
   * or memory grows with the producer. After close the bytes are dropped and false is returned;
   * onClose has already said why. `now`: on a quiet link the bytes are framed and written before
   * write returns (a keystroke, its echo), not after the caller's event-loop callback.
   */
  write(data: Uint8Array, options?: { transfer?: boolean; now?: boolean }): boolean {
    if (this.closed) return false;
    if (data.length > 0) {
      keyTrace?.('stream.write', data.length);
      this.queue.push(options?.transfer ? data : copyOf(data));
      this.queued += data.length;
      if (this.hasCredit) {
        if (options?.now) this.host.wantsToSendNow(this);
        else this.host.wantsToSend(this);
      }
    }
    const below = this.queued + this.sent - this.peerAcked < this.window;
    if (!below) this.writerWaiting = true;
    return below;
  }

  /**
   * The consumer has used every byte before `offset`; the peer may send `window` bytes beyond it.
   * On a closed stream nothing is sent (releasesDataOnAck's buffers still go back).
   */
  ack(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset > this.received) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `stream ${this.id}: cannot ack offset ${offset}, only ${this.received} received`,
      );
    }
    if (this.heldHead < this.heldEnds.length) this.releaseHeld(offset);
    if (this.closed || offset <= this.ackedByUs) return;
    this.ackedByUs = offset;
    // A quarter window consumed: ack now (within this batch), the sender may be waiting for credit.
    // Less: ack a little later, so a stream of small chunks costs one ack frame, not one each
    // (a `cat` of 100 MB arrives in ~4 KiB pieces; an ack per piece doubles the frames).
    const urgent = this.ackedByUs - this.lastAckSent >= this.window / 4;
    if (this.ackFramePending) {
      // A delayed ack that became urgent goes now: waiting out its timer (late on a busy
      // machine) would leave a bulk sender without credit, idle, for that long.
      if (!urgent || this.ackSoon) return;
      this.ackNow();
      return;
    }
    this.ackFramePending = true;
    if (urgent) this.ackNow();
    else if (this.ackTimer === undefined) {
      this.ackTimer = setTimeout(this.ackTimerFired, this.ackDelayMs);
      this.ackRode = false;
    }
    // Else the timer armed for an ack that has since ridden data is still running: it covers
    // this one too (see ackTimerFired).
  }

  /** Gives back the read buffers of the bytes before `offset` (releasesDataOnAck). */
  private releaseHeld(offset: number): void {
    const ends = this.heldEnds;
    let head = this.heldHead;
    while (head < ends.length && ends[head]! <= offset) {
      const release = this.heldReleases[head]!;
      this.heldReleases[head] = noRelease;
      head++;
      release();
    }
    if (head === ends.length) {
      this.heldEnds = [];
      this.heldReleases = [];
      head = 0;
    } else if (head >= 1024) {
      this.heldEnds = ends.slice(head);
      this.heldReleases = this.heldReleases.slice(head);
      head = 0;
    }
    this.heldHead = head;
  }

  /** The waiting ack leaves at the end of this microtask, not on its timer. */
  private ackNow(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.ackSoon = true;
    queueMicrotask(this.sendAckSoon);
  }

  private readonly sendAckSoon = (): void => {
    this.ackSoon = false;
    if (this.ackFramePending) this.sendAck();
  };

  /**
   * The ack timer. It is left running when its ack rides data (afterSend): a setTimeout and a
   * clearTimeout per keystroke and per echo cost some 50 us on a cold cache (measured after 50 ms
   * pauses), more than the rest of the stream's work. An ack that became due after such a ride
   * gets one more period (so at most twice ackDelayMs), since the data it is waiting to ride on
   * is likely still flowing: one timer per period while typing, no frame of its own.
   */
  private readonly ackTimerFired = (): void => {
    this.ackTimer = undefined;
    if (!this.ackFramePending || this.ackSoon || this.closed) return;
    if (this.ackRode) {
      this.ackRode = false;
      this.ackTimer = setTimeout(this.ackTimerFired, this.ackDelayMs);
      return;
    }
    this.sendAck();
  };

  private sendAck(): void {
    this.ackFramePending = false;
    if (this.closed) return;
    this.lastAckSent = this.ackedByUs;
    this.host.sendAck(this.id, this.ackedByUs);
  }

  /**
   * Stops the stream on this side; onClose fires now. Bytes already written still go out ahead
   * of the close frame (the last lines of a finished command must arrive), unless
   * `{ flush: false }` asks to drop them.
   */
  close(
    reason: CloseReason = { code: 'closed', message: 'stream closed by this side' },
    options?: { flush?: boolean },
  ): void {
    if (this.closed) return;
    if (options?.flush === false || this.queued === 0) {
      this.dropQueue();
      this.host.sendClose(this.id, reason);
      this.finish(reason);
    } else {
      this.flushThenClose = reason;
      this.finish(reason, { keepRegistered: true });
    }
  }

  private get hasCredit(): boolean {
    return this.sent - this.peerAcked < this.window;
  }

  /** @internal True when the scheduler can send a chunk of this stream now. */
  get readyToSend(): boolean {
    return this.queued > 0 && this.hasCredit && !this.released;
  }

  /**
   * @internal Takes the next chunk (at most maxBytes, within credit) for a data frame; its offset
   * is sentOffset as it was before the call.
   */
  takeChunk(maxBytes: number): Uint8Array | undefined {
    const size = Math.min(maxBytes, this.queued, this.window - (this.sent - this.peerAcked));
    if (size <= 0) return undefined;
    let payload: Uint8Array;
    const head = this.queue[0]!;
    if (head.length === size) {
      // The whole write (a request, an answer): as it is, no view of it.
      payload = head;
      this.queue.shift();
    } else if (head.length > size) {
      payload = head.subarray(0, size);
      this.queue[0] = head.subarray(size);
    } else if (head.length >= MERGE_BELOW_BYTES) {
      // A socket read or a file chunk: its own frame, as it is. Joining it to the next one would
      // copy both (a new buffer per frame) for a saving of one frame header.
      payload = head;
      this.queue.shift();
    } else {
      // Several small writes (keystrokes) travel in one frame, up to the first big one.
      let fill = 0;
      for (const part of this.queue) {
        if (fill > 0 && part.length >= MERGE_BELOW_BYTES) break;
        fill = Math.min(size, fill + part.length);
        if (fill === size) break;
      }
      payload = new Uint8Array(fill);
      let at = 0;
      while (at < fill) {
        const part = this.queue[0]!;
        const take = Math.min(part.length, fill - at);
        payload.set(part.subarray(0, take), at);
        at += take;
        if (take === part.length) this.queue.shift();
        else this.queue[0] = part.subarray(take);
      }
    }
    this.sent += payload.length;
    this.queued -= payload.length;
    return payload;
  }

  /**
   * @internal Called by the scheduler after a chunk went out: a waiting ack goes with it (in the
   * same write), and a flushing close may finish now.
   */
  afterSend(): void {
    if (this.ackFramePending && !this.ackSoon && this.ackRidesData) {
      // Its timer stays armed (see ackTimerFired).
      this.ackRode = true;
      this.sendAck();
    }
    if (this.flushThenClose !== undefined && this.queued === 0) {
      const reason = this.flushThenClose;
      this.flushThenClose = undefined;
      this.host.sendClose(this.id, reason);
      this.release();
    }
  }

  /** @internal A data frame from the peer. Violations close this stream only. */
  receiveData(offset: number, payload: Uint8Array, lease?: ReadLease): void {
    if (this.closed) return; // we closed it; the peer's in-flight bytes are expected, not an error
    if (offset !== this.received) {
      this.protocolError(`data at offset ${offset}, expected ${this.received}`);
      return;
    }
    if (this.received + payload.length - this.ackedByUs > this.window) {
      this.protocolError(
        `peer sent ${this.received + payload.length - this.ackedByUs} unacknowledged bytes, window is ${this.window}`,
      );
      return;
    }
    if (payload.length === 0) return;
    this.received += payload.length;
    if (lease && !this.borrowsData) {
      if (this.releasesDataOnAck && !this.autoAck) {
        this.heldEnds.push(this.received);
        this.heldReleases.push(lease.hold());
      } else {
        lease.keep();
      }
    }
    try {
      const listeners = this.dataListeners;
      const lent = this.borrowsData ? lease : undefined;
      for (let i = 0; i < listeners.length; i++) listeners[i]!(payload, offset, lent);
    } catch (error) {
      this.abort({
        code: 'E_INTERNAL',
        message: `stream ${this.id} data handler failed: ${toHangarError(error).message}`,
      });
      return;
    }
    if (this.autoAck && !this.closed) this.ack(this.received);
  }

  /** @internal An ack frame from the peer: cumulative, so repeating one is harmless. */
  receiveAck(offset: number): void {
    if (this.released) return;
    if (offset > this.sent || offset < this.peerAcked) {
      this.protocolError(`ack of offset ${offset}, but sent up to ${this.sent} and acked up to ${this.peerAcked}`);
      return;
    }
    if (offset === this.peerAcked) return;
    this.peerAcked = offset;
    if (this.readyToSend) this.host.wantsToSend(this);
    if (this.closed) return;
    this.guard('ack', () => this.ackEmitter.fire(offset));
    if (this.writerWaiting && !this.closed && this.queued + this.sent - this.peerAcked < this.window) {
      this.writerWaiting = false;
      this.guard('drain', () => this.drainEmitter.fire());
    }
  }

  /** @internal The peer closed the stream: nothing more goes either way. */
  receiveClose(reason: CloseReason): void {
    this.dropQueue();
    this.flushThenClose = undefined;
    this.finish(reason);
  }

  /** @internal The link is gone; streams end with the link's reason. */
  linkClosed(reason: CloseReason): void {
    this.dropQueue();
    this.flushThenClose = undefined;
    this.finish(reason);
  }

  private protocolError(message: string): void {
    this.abort({ code: 'E_PROTOCOL', message: `stream ${this.id}: ${message}` });
  }

  /** Closes at once (no flush) and tells the peer why, even if we had closed gracefully before. */
  private abort(reason: CloseReason): void {
    this.dropQueue();
    this.flushThenClose = undefined;
    if (!this.released) this.host.sendClose(this.id, reason);
    this.finish(reason);
  }

  private guard(what: string, fire: () => void): void {
    try {
      fire();
    } catch (error) {
      this.abort({
        code: 'E_INTERNAL',
        message: `stream ${this.id} ${what} handler failed: ${toHangarError(error).message}`,
      });
    }
  }

  private dropQueue(): void {
    this.queue = [];
    this.queued = 0;
  }

  private finish(reason: CloseReason, options?: { keepRegistered?: boolean }): void {
    if (!options?.keepRegistered) this.release();
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.closeEmitter.fire(reason);
    this.dataListeners = [];
    this.drainEmitter.dispose();
    this.ackEmitter.dispose();
    this.closeEmitter.dispose();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.host.release(this);
  }
}

/** A copy of the bytes, a Node Buffer too: Buffer's own slice() is a view of the same memory. */
function copyOf(data: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(data);
}
