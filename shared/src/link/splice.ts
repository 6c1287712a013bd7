import type { CloseReason } from '../protocol/control.js';
import { PREVIEW_EOF } from '../protocol/previews.js';
import type { HandleWrites } from './handle-writes.js';
import type { LinkStream } from './stream.js';

/**
 * The part of a byte socket (Node's net.Socket) that splicing needs. Structural, so this file
 * stays platform-neutral; the agent and the app core both hand in real sockets.
 */
export interface ByteSocket {
  /** `done` runs once the socket is finished with `data` (Node: the write callback). */
  write(data: Uint8Array, done?: (error?: Error | null) => void): boolean;
  /** Optional: holds writes until uncork(), which hands them to the kernel in one writev. */
  cork?(): void;
  uncork?(): void;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'drain' | 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * A spliced stream's acks wait this long (or for a quarter window) instead of riding on the data
 * this side sends: a request and its answer then cost one frame each way, not two, and no timer
 * per message. The window (1 MiB for previews) is far from spent in that time.
 */
export const SPLICE_ACK_DELAY_MS = 20;

const resolved = Promise.resolve();
/** stream.write's options for a socket's read, made once (not an object per read). */
const TRANSFER = { transfer: true } as const;
/**
 * Runs `fn` once the current task's callbacks have returned: a promise reaction, not
 * queueMicrotask (which Node wraps in an AsyncResource per call). The pieces of one frame arrive
 * in one task (a TLS read hands its records over before the task ends), so a socket corked for
 * them is uncorked by this: one writev, without waiting for the rest of the event loop's turn.
 */
export const afterThisTask = (fn: () => void): void => void resolved.then(fn);

/**
 * A socket's next read goes into what is left of its buffer while at least this much is: a small
 * read (a response of a few KiB) then costs no buffer of its own, and bulk reads stay big.
 */
const MIN_READ_ROOM = 16 * 1024;

/**
 * Buffers for socket reads, shared by a process's spliced connections (or its links' TLS reads,
 * LeasedReads), used again once the link is done with their bytes (the peer acked them). Node gives every socket read a fresh
 * 64 KiB buffer otherwise: a preview download then allocates its size in buffers, and the
 * external memory makes V8 collect every few tens of MiB (the agent spent more CPU collecting
 * than encrypting).
 */
export class ReadBufferPool {
  private readonly spare: Uint8Array[] = [];

  constructor(
    readonly size = 64 * 1024,
    /** Spare buffers kept at most (more given back are left to the collector). */
    private readonly keep = 64,
  ) {}

  take(): Uint8Array {
    return this.spare.pop() ?? new Uint8Array(this.size);
  }

  give(buffer: Uint8Array): void {
    if (this.spare.length < this.keep && buffer.length === this.size) this.spare.push(buffer);
  }
}

/** A pooled buffer a socket reads into, and how many of its reads the link has not acked yet. */
interface ReadBuffer {
  readonly buffer: Uint8Array;
  unacked: number;
}

/**
 * A socket's reads into pooled buffers: pass `onread` to Node's net.connect (each read lands in
 * a buffer from `buffer()`, and `callback` gets it), then this to spliceSocket. Reads go one after
 * the other into a buffer until less than MIN_READ_ROOM of it is left, and are handed to the stream
 * as views, never copied; the buffer goes back to the pool once the peer has acked all of them.
 * (Copying each small read out instead cost a fresh buffer per read: a preview answering 4 KiB
 * assets allocated as much external memory again as it forwarded, and V8 counts that toward its
 * next full collection.)
 */
export class PooledReads {
  private deliver: ((length: number, view: Uint8Array) => boolean) | undefined;
  private early: Uint8Array[] = [];
  /**
   * Sees each read (its copy) that comes before the splice; true reads on (the reader waits
   * otherwise). The core's preview reads the request's head this way before it opens a stream.
   */
  beforeSplice: ((chunk: Uint8Array) => boolean) | undefined;
  /** The buffer reads land in now, and where the next read starts in it. */
  private current: ReadBuffer | undefined;
  private at = 0;

  constructor(private readonly pool: ReadBufferPool) {}

  readonly onread = {
    buffer: (): Uint8Array => {
      let current = this.current;
      if (current === undefined || current.buffer.length - this.at < MIN_READ_ROOM) {
        // The full one goes back once the peer has acked its reads (at once if it has).
        if (current !== undefined && current.unacked === 0) this.pool.give(current.buffer);
        current = this.current = { buffer: this.pool.take(), unacked: 0 };
        this.at = 0;
      }
      return current.buffer.subarray(this.at);
    },
    callback: (length: number, view: Uint8Array): boolean => {
      if (this.deliver) return this.deliver(length, view);
      // Before the splice: kept (copied) for it, the buffer's room read into again; the reader
      // waits unless beforeSplice wants more.
      const chunk = view.slice(0, length);
      this.early.push(chunk);
      return this.beforeSplice?.(chunk) ?? false;
    },
  };

  /**
   * Reads from now on are dropped, and so is what came early (the socket is answered and closed
   * without a splice: it reads on so that the peer's close is seen).
   */
  discard(): void {
    this.beforeSplice = undefined;
    this.early = [];
    this.deliver = () => true;
  }

  /**
   * Hands what came before the splice to someone else (the core's preview gives a browser's
   * socket to a lane's native relay): the reads so far, in order; any later read is dropped.
   */
  takeEarly(): Uint8Array[] {
    const early = this.early;
    this.early = [];
    this.beforeSplice = undefined;
    this.deliver = () => false;
    return early;
  }

  /**
   * The socket is closed (no read lands any more): the buffer reads went into goes back now if
   * the peer has acked them all, else once it has.
   */
  release(): void {
    const current = this.current;
    this.current = undefined;
    if (current !== undefined && current.unacked === 0) this.pool.give(current.buffer);
  }

  /** @internal The splice takes the reads: what came early first, through `write`. */
  attach(stream: LinkStream, write: (chunk: Uint8Array) => boolean): void {
    /** Reads whose bytes the stream has, with the stream offset their bytes end at. */
    const lent: { owner: ReadBuffer; end: number }[] = [];
    stream.onAck((offset) => {
      while (lent.length > 0 && lent[0]!.end <= offset) {
        const owner = lent.shift()!.owner;
        if (--owner.unacked === 0 && owner !== this.current) this.pool.give(owner.buffer);
      }
    });
    this.beforeSplice = undefined;
    for (const chunk of this.early.splice(0)) write(chunk);
    this.deliver = (length, view) => {
      const owner = this.current!;
      this.at += length;
      owner.unacked++;
      const room = write(view.subarray(0, length));
      lent.push({ owner, end: stream.sentOffset + stream.queuedBytes });
      return room;
    };
  }
}

export interface SpliceOptions {
  /**
   * Runs `flush` later (afterThisTask, or setImmediate for after this turn's I/O). Given, and the
   * socket corks, the stream's bytes until then (a big frame comes in pieces, one per TLS record)
   * leave in one writev, as they are: no copy, one syscall. A piece alone until then (a request,
   * an answer: most of them) is written then as it is, without corking: Node queues a corked
   * write as an object of its own and replays it at uncork, which cost the agent and the core
   * about 1 µs a request (ab.mjs, 12 rounds: 43.3 against 45.2 µs both together).
   */
  later?(flush: () => void): void;
  /** The socket reads into pooled buffers (it was connected with `reads.onread`). */
  reads?: PooledReads;
  /**
   * The socket's handle, written past its Writable stream while nothing of the socket's own is
   * queued (handle-writes.ts): a piece written alone then costs no Writable bookkeeping and no
   * `process.nextTick`. Corked pieces still go through the socket.
   */
  writes?: HandleWrites;
}

/**
 * Joins a TCP connection and a link stream, both ways, with backpressure both ways: the socket
 * is paused while the stream's window is full, and the peer gets credit only for bytes the
 * socket has taken (autoAck off), so neither end holds more than a window plus the socket's
 * buffer. The stream carries no half-close: the first side to end ends both (`eof`), which is
 * what HTTP and WebSocket from browsers need. Resolves with why it ended.
 */
export function spliceSocket(
  socket: ByteSocket,
  stream: LinkStream,
  options: SpliceOptions = {},
): Promise<CloseReason> {
  stream.autoAck = false;
  stream.ackRidesData = false;
  // The socket says when it is done with each write: the link's read buffer can go round again.
  stream.borrowsData = true;
  stream.ackDelayMs = SPLICE_ACK_DELAY_MS;
  let ended = false;
  let corked = false;
  const { later, writes } = options;
  /** The task's first piece, held until its end (or until a second piece corks the socket). */
  let held: Uint8Array | undefined;
  let heldEnd = 0;
  /** Gives the held piece's read buffer back (LeasedReads), once the socket has written it. */
  let heldRelease: (() => void) | undefined;
  let waiting = false;
  /** `release` gives the bytes' read buffer back once the socket has written them (LeasedReads). */
  const send = (data: Uint8Array, consumed: number, release?: () => void) => {
    if (writes !== undefined) {
      const now = writes.write(data, consumed, release);
      if (now === true) {
        release?.();
        stream.ack(consumed);
        return;
      }
      // False: writes.writtenLater acks once the handle has written it.
      if (now === false) return;
    }
    // `release` ignores the write's error: the buffer may go round either way.
    if (release ? socket.write(data, release) : socket.write(data)) stream.ack(consumed);
  };
  if (writes !== undefined) {
    writes.writtenLater = (error, consumed, release) => {
      release?.();
      // A failed write destroyed the socket: its 'error' and 'close' end the stream.
      if (error === undefined && !stream.closed) stream.ack(consumed);
    };
  }
  const endOfTask = () => {
    waiting = false;
    if (corked) {
      corked = false;
      socket.uncork!();
    } else if (held !== undefined) {
      const data = held;
      const release = heldRelease;
      held = heldRelease = undefined;
      send(data, heldEnd, release);
    }
  };
  return new Promise<CloseReason>((resolve) => {
    const finish = (reason: CloseReason) => {
      if (ended) return;
      ended = true;
      resolve(reason);
    };

    // A pooled buffer goes round once acked; Node's own reads are fresh: the stream keeps them.
    const write = (chunk: Uint8Array) => stream.write(chunk, TRANSFER);
    if (options.reads) {
      // False pauses the socket (Node's onread contract), as pause() below does.
      options.reads.attach(stream, write);
    } else {
      socket.on('data', (chunk) => {
        if (!write(chunk)) socket.pause();
      });
    }
    stream.onDrain(() => socket.resume());
    socket.on('end', () => stream.close({ code: PREVIEW_EOF, message: 'connection ended' }));
    socket.on('error', (error) =>
      stream.close({ code: 'E_UNAVAILABLE', message: `connection failed: ${error.message}` }, { flush: false }),
    );
    socket.on('close', () => {
      options.reads?.release();
      stream.close({ code: PREVIEW_EOF, message: 'connection closed' });
      finish({ code: PREVIEW_EOF, message: 'connection closed' });
    });

    stream.onData((data, offset, lease) => {
      const consumed = offset + data.length;
      // The bytes may sit in the socket's queue after this returns: their read buffer waits.
      const release = lease?.hold();
      if (!later || !socket.cork) {
        send(data, consumed, release);
        return;
      }
      if (!waiting) {
        // Most tasks bring one piece (a request, an answer): written alone at the task's end,
        // without corking (Node queues a corked write as an object and replays it at uncork).
        waiting = true;
        held = data;
        heldEnd = consumed;
        heldRelease = release;
        later(endOfTask);
        return;
      }
      if (!corked) {
        // A second piece in the task: the socket corks, and endOfTask uncorks it (one writev).
        corked = true;
        socket.cork();
        if (held !== undefined) {
          const first = held;
          const firstRelease = heldRelease;
          held = heldRelease = undefined;
          send(first, heldEnd, firstRelease);
        }
      }
      send(data, consumed, release);
    });
    socket.on('drain', () => {
      // Bytes held for the end of the task are not the socket's yet.
      if (!stream.closed) stream.ack(held === undefined ? stream.recvOffset : heldEnd - held.length);
    });
    stream.onClose((reason) => {
      // Bytes that arrived before the close go first (end() sends what the socket holds).
      const last = held;
      const lastRelease = heldRelease;
      held = heldRelease = undefined;
      if (reason.code === PREVIEW_EOF) {
        if (last !== undefined) socket.write(last, () => lastRelease?.());
        socket.end();
      } else {
        socket.destroy();
        lastRelease?.();
      }
      finish(reason);
    });
  });
}
