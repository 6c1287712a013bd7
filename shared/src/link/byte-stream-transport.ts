import { Emitter, toDisposable, type Disposable } from '../disposable.js';
import { HangarError } from '../errors.js';
import {
  ACK_FRAME_BYTES,
  checkDataHead,
  DATA_HEAD_BYTES,
  decodeFrame,
  FRAME_TYPE,
  MAX_FRAME_BYTES,
  writeAckFrame,
  writeDataHead,
} from '../frames.js';
import type { CloseReason } from '../protocol/control.js';
import { keyTrace } from './key-trace.js';
import { ReadLease, type LeasedReads, type ReadBuffers } from './read-lease.js';
import {
  LINK_CLOSED,
  TOO_MANY_UNCLAIMED,
  deliverFrame,
  transportListeners,
  type AckListener,
  type DataPartListener,
  type FrameTransport,
} from './transport.js';

/**
 * ALPN name of the link carried straight on TLS: each frame is a u32 big-endian length and the
 * frame's bytes, nothing else. Offered by Node clients next to `http/1.1` (WebSocket, which old
 * agents and browsers speak); the agent picks it when it knows it. ALPN is part of the TLS 1.3
 * handshake, so the link handshake's binding to the TLS exporter covers the choice too.
 */
export const RAW_LINK_ALPN = 'hangar-link/1';

const LENGTH_BYTES = 4;
/** A frame up to this size on a quiet link leaves once its sender returns (a keystroke, its echo). */
const SMALL_FRAME_BYTES = 1024;
/**
 * Frames below this size are copied behind their length, into the write of their neighbours;
 * bigger payloads (bulk) go to the socket alone, uncopied. Node joins the chunks of a corked or queued
 * writev into one new buffer (StreamBase, then TLSWrap for SSL_write): a copy of every bulk byte
 * and, on a virtualised host, a page fault per 4 KiB of the fresh buffer.
 */
const JOIN_BELOW_BYTES = 64 * 1024;
/** A joined write stops growing at this size. */
const MAX_JOINED_BYTES = 256 * 1024;
/**
 * Small pieces are written straight into slabs of this size, behind each other, and handed to the
 * socket as views: no buffer per frame, no second copy to join them. A region of a slab is never
 * written over while the socket may still read it: a new slab is taken when the current one is
 * full, and the full one is used again once every write of its regions is done (SPARE_SLABS kept
 * per link). A fresh 256 KiB slab every 60 answers of a busy preview cost the agent a memset of
 * each and, as external memory, full collections (V8 counts it toward the old generation).
 */
const SLAB_BYTES = 256 * 1024;
const SPARE_SLABS = 4;
/** Kinds of queued writes: ends with the head of the payload after it; a bulk payload. */
const HEAD_GOES_ON = 1;
const BULK = 2;
/** Writes in the socket at once: one under way and one waiting alone behind it. */
const MAX_WRITES = 2;
/** At or above this many queued bytes the transport is high; onDrain fires once it empties. */
const HIGH_WATER = 64 * 1024;
/**
 * A data frame at least this big that does not fit in the read at hand is handed on in pieces,
 * as its bytes arrive (views of the reads, no copy), instead of gathered into a buffer of its
 * own. TLS hands bytes over at most 16 KiB at a time, so every bulk frame (256 KiB) and every
 * full preview frame (64 KiB and its head) would be copied whole into fresh memory, which the
 * collector then chases. A preview's pieces leave for the browser in one writev per turn
 * (spliceSocket corks), so whole frames save no writes. Below it frames stay whole: terminal
 * output (32 KiB frames) goes on to a window, where one write per frame costs less than the copy.
 */
export const STREAMED_DATA_FRAME_BYTES = 64 * 1024;
/** A peer that neither closes nor reads after our close is cut off after this long. */
const CLOSE_GRACE_MS = 2000;

const resolved = Promise.resolve();

/**
 * The part of a byte socket (Node's TLSSocket) the transport needs. Structural, so this file
 * stays platform-neutral; only Node processes use it (browsers keep WebSocket).
 */
export interface DuplexByteSocket {
  /** `done` runs once the socket is finished with `data` (Node: the write callback). */
  write(data: Uint8Array, done: (error?: Error | null) => void): boolean;
  readonly writableLength: number;
  end(): void;
  destroy(): void;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'drain' | 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * Splits a byte stream into length-prefixed frames, whatever the reads' boundaries: a frame may
 * come in many reads, a read may hold many frames. A frame inside one read is handed over as a
 * view of it (no copy); a frame split across reads is copied, once, into its own buffer, except
 * a big data frame when `onDataPart` is given: its payload goes there piece by piece, as views.
 * With `buffers` (the pool the socket reads into), a split frame that fits one of its buffers is
 * put together in one, and a data frame goes on with that buffer's lease (it goes round again
 * once its bytes are done with): a preview's answers of a few KiB, three or four to a 16 KiB TLS
 * read, were otherwise a fresh buffer for every read, about 1.2 KB of external memory per
 * request in the core, which V8 counts toward its next full collection.
 */
export class FrameReader {
  /** Bytes of an incomplete length prefix. */
  private prefix = new Uint8Array(LENGTH_BYTES);
  private prefixHave = 0;
  /** The frame being filled across reads, and how much of it has arrived. */
  private partial: Uint8Array | undefined;
  private partialHave = 0;
  /** The pooled buffer `partial` is a view of (else its own). */
  private partialPooled: Uint8Array | undefined;
  /** The start of a big frame not yet known to be data: its first bytes, and its length. */
  private head = new Uint8Array(DATA_HEAD_BYTES);
  private headHave = 0;
  private headOf = 0;
  /** A data frame being handed on in pieces: where the next piece goes, and what is left. */
  private streaming: { stream: number; offset: number; left: number } | undefined;

  constructor(
    private readonly maxFrameBytes = MAX_FRAME_BYTES,
    private readonly buffers?: ReadBuffers & { readonly size: number },
  ) {}

  /** Room for a frame split across reads: in a pooled buffer when one is big enough. */
  private startPartial(length: number): void {
    if (this.buffers !== undefined && length <= this.buffers.size) {
      const pooled = this.buffers.take();
      this.partialPooled = pooled;
      this.partial = pooled.subarray(0, length);
    } else {
      this.partial = new Uint8Array(length);
    }
  }

  /** The frame in `partial` is whole: handed on, its pooled buffer lent (data) or given back. */
  private endPartial(onFrame: (frame: Uint8Array) => void, onDataPart: DataPartListener | undefined): void {
    const frame = this.partial!;
    const pooled = this.partialPooled;
    this.partial = this.partialPooled = undefined;
    if (pooled === undefined) {
      onFrame(frame);
    } else if (onDataPart && frame[0] === FRAME_TYPE.data && frame.length >= DATA_HEAD_BYTES) {
      const lease = new ReadLease(pooled, this.buffers!);
      try {
        onDataPart(readU32(frame, 1), readOffset(frame, 5), frame.subarray(DATA_HEAD_BYTES), lease);
      } finally {
        lease.release();
      }
    } else {
      // onFrame's listeners may keep what they get: a copy of its own, the buffer goes round.
      const copy = frame.slice();
      this.buffers!.give(pooled);
      onFrame(copy);
    }
  }

  /**
   * Calls `onFrame` for each frame `chunk` completes, and `onDataPart` (when given) for each
   * piece of a big data frame's payload; throws E_PROTOCOL on a bad length or data head. With
   * `lease` (chunk is a view of a pooled read buffer), a piece goes on with the lease, and a frame
   * handed to `onFrame` as a view keeps the buffer (onFrame's listeners do not say when they are done).
   * With `onAck`, an ack frame within the chunk goes there as its stream and offset.
   */
  push(
    chunk: Uint8Array,
    onFrame: (frame: Uint8Array) => void,
    onDataPart?: DataPartListener,
    lease?: ReadLease,
    onAck?: AckListener,
  ): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.streaming !== undefined) {
        const part = this.streaming;
        const take = Math.min(part.left, chunk.length - at);
        const offset = part.offset;
        part.offset += take;
        part.left -= take;
        if (part.left === 0) this.streaming = undefined;
        onDataPart!(part.stream, offset, chunk.subarray(at, at + take), lease);
        at += take;
        continue;
      }
      if (this.headOf > 0) {
        const take = Math.min(DATA_HEAD_BYTES - this.headHave, chunk.length - at);
        this.head.set(chunk.subarray(at, at + take), this.headHave);
        this.headHave += take;
        at += take;
        if (this.headHave < DATA_HEAD_BYTES) return;
        const length = this.headOf;
        this.headOf = 0;
        if (this.head[0] === FRAME_TYPE.data && onDataPart) {
          const frame = decodeFrame(this.head);
          if (frame.type !== 'data') throw new HangarError('E_PROTOCOL', 'data frame head did not decode as data');
          this.streaming = { stream: frame.stream, offset: frame.offset, left: length - DATA_HEAD_BYTES };
        } else {
          this.startPartial(length);
          this.partial!.set(this.head);
          this.partialHave = DATA_HEAD_BYTES;
        }
        continue;
      }
      if (this.partial !== undefined) {
        const take = Math.min(this.partial.length - this.partialHave, chunk.length - at);
        this.partial.set(chunk.subarray(at, at + take), this.partialHave);
        this.partialHave += take;
        at += take;
        if (this.partialHave === this.partial.length) this.endPartial(onFrame, onDataPart);
        continue;
      }
      let length: number;
      if (this.prefixHave === 0 && chunk.length - at >= LENGTH_BYTES) {
        length = readU32(chunk, at);
        at += LENGTH_BYTES;
      } else {
        const take = Math.min(LENGTH_BYTES - this.prefixHave, chunk.length - at);
        this.prefix.set(chunk.subarray(at, at + take), this.prefixHave);
        this.prefixHave += take;
        at += take;
        if (this.prefixHave < LENGTH_BYTES) return;
        this.prefixHave = 0;
        length = readU32(this.prefix, 0);
      }
      if (length === 0 || length > this.maxFrameBytes) {
        throw new HangarError('E_PROTOCOL', `frame length ${length} is outside 1..${this.maxFrameBytes} bytes`);
      }
      if (chunk.length - at >= length) {
        if (onDataPart && chunk[at] === FRAME_TYPE.data && length >= DATA_HEAD_BYTES) {
          // A whole data frame: its head read in place, its payload handed on as a view (no
          // frame object, no DataView: one of each per request on a busy preview).
          onDataPart(
            readU32(chunk, at + 1),
            readOffset(chunk, at + 5),
            chunk.subarray(at + DATA_HEAD_BYTES, at + length),
            lease,
          );
        } else if (
          onAck &&
          length === ACK_FRAME_BYTES &&
          chunk[at] === FRAME_TYPE.ack &&
          readU32(chunk, at + 5) <= MAX_OFFSET_HIGH
        ) {
          // An ack read in place (one rides every keystroke and every echo). An offset past
          // 2^53-1 goes the usual way, to be refused as the mux refuses it.
          onAck(readU32(chunk, at + 1), readOffset(chunk, at + 5));
        } else {
          lease?.keep();
          onFrame(chunk.subarray(at, at + length));
        }
        at += length;
      } else if (onDataPart && length >= STREAMED_DATA_FRAME_BYTES) {
        // Its head first (it may be split too): a data frame goes on in pieces, others whole.
        this.headOf = length;
        this.headHave = 0;
      } else {
        this.startPartial(length);
        this.partialHave = 0;
      }
    }
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** The highest high half of a safe integer offset (2^53-1). */
const MAX_OFFSET_HIGH = 0x1f_ffff;

/** A data frame's offset: u64 big-endian, a safe integer (frames.ts refuses larger ones to send). */
function readOffset(bytes: Uint8Array, at: number): number {
  const high = readU32(bytes, at);
  const low = readU32(bytes, at + 4);
  if (high > MAX_OFFSET_HIGH) {
    throw new HangarError('E_PROTOCOL', `offset ${(BigInt(high) << 32n) | BigInt(low)} exceeds 2^53-1`);
  }
  return high * 0x1_0000_0000 + low;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

/** The length prefix and the frame, as the bytes that go on the wire (for tests and fuzzing). */
export function encodeLengthPrefixed(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(LENGTH_BYTES + frame.length);
  writeU32(out, 0, frame.length);
  out.set(frame, LENGTH_BYTES);
  return out;
}

/** A slab and how many of its regions are queued or in the socket; `full`: no region will be added. */
interface SlabUse {
  readonly slab: Uint8Array;
  regions: number;
  full: boolean;
}

export interface ByteStreamBatching {
  /** Runs `flush` after this turn's I/O (Node: setImmediate): a turn's frames leave in one write. */
  later(flush: () => void): void;
}

/**
 * The link straight on a TLS socket (RAW_LINK_ALPN), for Node peers: no WebSocket framing, no
 * client masking (RFC 6455 masks every client frame, a copy and an XOR per byte that TLS makes
 * pointless), no per-message header parsing. The frames of one event-loop turn leave together,
 * after the turn: small ones joined into one write (one TLS record run, one syscall), a bulk
 * payload as its own write, never copied. One write is in the socket at a time, so Node never
 * joins queued chunks itself. The exception is the first small frame after a quiet spell (a
 * keystroke, its echo): nothing of ours waits to be written, so it leaves as soon as the code that
 * sent it returns (with whatever that code sent beside it), and the rest of its turn is batched
 * behind it.
 */
export function wrapByteStream(
  socket: DuplexByteSocket,
  batching: ByteStreamBatching,
  /** The socket reads into pooled buffers (it was connected with `reads.onread`). */
  reads?: LeasedReads,
): FrameTransport {
  const frames = new Emitter<Uint8Array>();
  let dataParts: DataPartListener | undefined;
  let acks: AckListener | undefined;
  const drains = new Emitter<void>();
  const closes = new Emitter<CloseReason>();
  const unclaimed: Uint8Array[] = [];
  const emitters = { frames, drains, closes, unclaimed };
  const reader = new FrameReader(MAX_FRAME_BYTES, reads?.buffers);
  let closed = false;
  let closeReason: CloseReason | undefined;
  let wasHigh = false;
  /** Bytes for the socket, in order, not handed to it yet: slab regions and bulk payloads. */
  const out: Uint8Array[] = [];
  /** Bytes queued: in `out` and in the open region. */
  let outBytes = 0;
  /** The slab small pieces are written into, how far it is filled, and where the open region starts. */
  let slab: Uint8Array = new Uint8Array(0);
  let slabUsed = 0;
  /** The current slab's regions not written yet (queued or in the socket), and every other slab's. */
  let slabOwner: SlabUse = { slab, regions: 0, full: false };
  /** Full slabs whose writes are all done, to be filled again. */
  const spareSlabs: Uint8Array[] = [];
  /** Which slab each entry of `urgent` and `out` is a region of (undefined: a bulk payload). */
  const urgentOwners: SlabUse[] = [];
  const outOwners: (SlabUse | undefined)[] = [];
  /** A region's write is done: its slab may be used again once full and with no region left. */
  const regionDone = (owner: SlabUse | undefined) => {
    if (owner === undefined || --owner.regions > 0 || !owner.full) return;
    if (owner.slab.length === SLAB_BYTES && spareSlabs.length < SPARE_SLABS) spareSlabs.push(owner.slab);
  };
  /** Start of the region of `slab` still being filled (not in `out` yet); -1 when none is open. */
  let openAt = -1;
  /**
   * The lane for frames that may pass queued bulk: pongs, acks, and small data of a stream with
   * nothing of its own queued (a keystroke, its echo). Written before `out`, so what waits ahead
   * of a keystroke beside a download is the writes under way, not the payloads queued behind them.
   */
  const urgent: Uint8Array[] = [];
  /** The open region belongs to the urgent lane. */
  let openUrgent = false;
  /** Bulk payloads in `out`: only then do frames take the urgent lane (else one write is enough). */
  let bulkQueued = 0;
  /**
   * Order kept across the lanes: frames in `out` are numbered; a data frame may pass them only
   * when every earlier one of its stream, and every control and close frame, has gone to the socket.
   */
  let numbered = 0;
  let written = 0;
  /** The number each entry of `out` ends at (`written` becomes it once the entry is in the socket). */
  const outEnds: number[] = [];
  /** Per entry of `out`: HEAD_GOES_ON (it ends with the head of the bulk payload after it), BULK. */
  const outKinds: number[] = [];
  /** The last write ended with a head whose payload must follow it before anything else. */
  let midFrame = false;
  let lastBarrier = 0;
  const lastOfStream = new Map<number, number>();
  let flushScheduled = false;
  /** Bytes handed to the socket whose writes have not finished, and how many writes. */
  let inSocket = 0;
  let writes = 0;
  let ending = false;
  let ended = false;

  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    closes.fire(reason);
    frames.dispose();
    drains.dispose();
    closes.dispose();
  };

  const deliver = (frame: Uint8Array) => {
    if (closed) return;
    if (!deliverFrame(emitters, frame)) transport.close({ code: 'E_PROTOCOL', message: TOO_MANY_UNCLAIMED });
  };

  const received = (chunk: Uint8Array, lease?: ReadLease) => {
    keyTrace?.('link.read', chunk.length);
    if (closed) return;
    try {
      reader.push(chunk, deliver, dataParts, lease, acks);
    } catch (error) {
      transport.close({ code: 'E_PROTOCOL', message: `peer broke the link's framing: ${(error as Error).message}` });
      socket.destroy();
    }
  };
  socket.on('data', (chunk) => received(chunk));
  reads?.attach(received);
  socket.on('error', (error) => {
    finish(closeReason ?? { code: 'E_UNAVAILABLE', message: `link connection failed: ${error.message}` });
  });
  socket.on('close', () => finish(closeReason ?? { code: 'closed', message: 'link connection closed' }));

  /** The open region, if any, goes behind what is queued: what comes next starts a new one. */
  const closeRegion = (kind = 0) => {
    if (openAt < 0) return;
    slabOwner.regions++;
    if (openUrgent) {
      urgent.push(slab.subarray(openAt, slabUsed));
      urgentOwners.push(slabOwner);
    } else {
      out.push(slab.subarray(openAt, slabUsed));
      outOwners.push(slabOwner);
      outEnds.push(numbered);
      outKinds.push(kind);
    }
    openAt = -1;
  };

  /** Room for `size` bytes at the end of the open region of `lane` (opening one, in a new slab if need be). */
  const reserve = (size: number, toUrgent = false): number => {
    if (openAt >= 0 && (openUrgent !== toUrgent || slabUsed - openAt + size > MAX_JOINED_BYTES)) closeRegion();
    if (slab.length - slabUsed < size) {
      closeRegion();
      slabOwner.full = true;
      slabOwner.regions++;
      regionDone(slabOwner); // back at once if none of its regions is still to be written
      slab = (size <= SLAB_BYTES && spareSlabs.pop()) || new Uint8Array(Math.max(SLAB_BYTES, size));
      slabOwner = { slab, regions: 0, full: false };
      slabUsed = 0;
    }
    if (openAt < 0) {
      openAt = slabUsed;
      openUrgent = toUrgent;
    }
    const at = slabUsed;
    slabUsed += size;
    outBytes += size;
    return at;
  };

  /** Something is queued (not handed to the socket yet). */
  const queued = () => out.length > 0 || urgent.length > 0 || openAt >= 0;

  /**
   * Whether a frame may take the urgent lane: only while bulk waits in `out`; `stream` is a data
   * frame's (undefined: a frame with no order to keep, an ack, ping or pong).
   */
  const mayPass = (stream?: number): boolean => {
    if (bulkQueued === 0) return false;
    if (stream === undefined) return true;
    return lastBarrier <= written && (lastOfStream.get(stream) ?? 0) <= written;
  };

  /** A frame went into `out`: numbered, for the order a later data frame must keep. */
  const numberFrame = (stream: number | undefined) => {
    numbered++;
    if (stream === undefined) lastBarrier = numbered;
    else {
      lastOfStream.set(stream, numbered);
      // Streams whose frames have all gone are forgotten now and then (ids are not reused soon).
      if (lastOfStream.size > 1024) for (const [id, last] of lastOfStream) if (last <= written) lastOfStream.delete(id);
    }
  };

  /** Sizes of the writes in the socket, oldest first (a stream finishes its writes in order). */
  const writing: number[] = [];
  /** The slab of each write in the socket, if it is a region of one. */
  const writingOwners: (SlabUse | undefined)[] = [];
  /** One callback for every write: no closure per write. */
  function writeDone(error?: Error | null): void {
    inSocket -= writing.shift()!;
    writes--;
    const owner = writingOwners.shift();
    if (!error) regionDone(owner);
    if (!error) flush(); // else 'error' and 'close' follow and end the transport
  }

  function flush(): void {
    flushScheduled = false;
    closeRegion();
    // Two writes at most: one under way, one waiting behind it alone (Node joins only two or more).
    while (writes < MAX_WRITES && (urgent.length > 0 || out.length > 0)) {
      let bytes: Uint8Array;
      let owner: SlabUse | undefined;
      // Never between a head and its payload: the peer would read our bytes as the payload.
      if (urgent.length > 0 && !midFrame) {
        bytes = urgent.shift()!;
        owner = urgentOwners.shift();
      } else {
        bytes = out.shift()!;
        owner = outOwners.shift();
        written = outEnds.shift()!;
        const kind = outKinds.shift()!;
        midFrame = (kind & HEAD_GOES_ON) !== 0;
        if (kind & BULK) bulkQueued--;
      }
      outBytes -= bytes.length;
      inSocket += bytes.length;
      writes++;
      writing.push(bytes.length);
      writingOwners.push(owner);
      keyTrace?.('link.write');
      socket.write(bytes, writeDone);
    }
    if (!queued()) afterFlush();
  }

  /** Everything is with the socket: a writer waiting for room may go on; a close may end it. */
  function afterFlush(): void {
    if (ending && !queued()) {
      // Node sends the FIN after the writes under way.
      if (!ended) socket.end();
      ended = true;
      return;
    }
    if (wasHigh && !closed && outBytes + inSocket < HIGH_WATER) {
      wasHigh = false;
      drains.fire();
    }
  }

  /** The first small frame after a quiet spell waits for the end of the microtask (or flush()). */
  let nowPending = false;
  /** Set by willFlush() until flush(): the caller writes what it sends before it returns. */
  let flushComing = false;
  function flushNow(): void {
    flushComing = false;
    if (!nowPending) return;
    nowPending = false;
    flush();
    keyTrace?.('link.flushed', socket.writableLength);
  }

  /** Nothing of ours is queued or in the socket: the link has been quiet. */
  const quiet = () => !queued() && writes === 0 && !flushScheduled;
  /**
   * `now`: written as soon as the code that sent it returns (a microtask: the first small frame
   * after a quiet spell), else after the turn. What that code sends with it (a request's data
   * frame and the ack it carries, an answer and its event) joins the same write: one syscall per
   * request instead of two.
   */
  const queuedNow = (now: boolean) => {
    if (outBytes + inSocket >= HIGH_WATER) wasHigh = true;
    if (now) {
      flushScheduled = true;
      nowPending = true;
      // A promise reaction, not queueMicrotask (an AsyncResource per call in Node: some 20 µs
      // per keystroke on a cold cache, measured after 50 ms pauses); none when flush() follows.
      if (!flushComing) void resolved.then(flushNow);
    } else if (!flushScheduled && writes < MAX_WRITES) {
      flushScheduled = true;
      batching.later(flush);
    }
  };

  /** A bulk payload: its own write, as it is (after what is queued before it). */
  const enqueueAlone = (bytes: Uint8Array) => {
    // The open region ends with this payload's length (and head): they leave back to back.
    closeRegion(HEAD_GOES_ON);
    out.push(bytes);
    outOwners.push(undefined);
    outEnds.push(numbered);
    outKinds.push(BULK);
    outBytes += bytes.length;
    bulkQueued++;
  };

  /** Whether the frame being sent by parts leaves at once (quiet() before it was queued). */
  let partsNow = false;
  /**
   * The first half of sending a frame by parts: its length queued, room for its head (of
   * `headBytes`) and, unless bulk, its body; returns where the head goes in `slab`. Throws before
   * anything is queued when the frame is too big.
   */
  const startParts = (headBytes: number, body: Uint8Array, stream: number | undefined): number => {
    const length = headBytes + body.length;
    if (length > MAX_FRAME_BYTES)
      throw new HangarError('E_PROTOCOL', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
    // A small payload (a request, a keystroke) leaves at once on a quiet link. Below
    // JOIN_BELOW_BYTES it is copied behind its head (cheaper than a write of its own); a bulk
    // payload goes to the socket alone, uncopied.
    partsNow = body.length <= SMALL_FRAME_BYTES && quiet();
    const joined = body.length < JOIN_BELOW_BYTES;
    const passes = body.length <= SMALL_FRAME_BYTES && stream !== undefined && mayPass(stream);
    const at = reserve(LENGTH_BYTES + headBytes + (joined ? body.length : 0), passes);
    if (!passes) numberFrame(stream);
    writeU32(slab, at, length);
    return at + LENGTH_BYTES;
  };
  /** The second half: the body behind the head (ending at `at`), or queued alone when bulk. */
  const endParts = (at: number, body: Uint8Array) => {
    if (body.length < JOIN_BELOW_BYTES) slab.set(body, at);
    else enqueueAlone(body);
    queuedNow(partsNow);
  };

  const transport: FrameTransport = {
    send(frame) {
      keyTrace?.('link.send', frame.length);
      if (closed) return;
      const now = frame.length <= SMALL_FRAME_BYTES && quiet();
      const type = frame[0];
      // Acks, pings and pongs keep no order with anything: they may pass queued bulk.
      const passes = (type === FRAME_TYPE.ack || type === FRAME_TYPE.ping || type === FRAME_TYPE.pong) && mayPass();
      const small = frame.length < JOIN_BELOW_BYTES;
      const at = reserve(LENGTH_BYTES + (small ? frame.length : 0), passes);
      if (!passes) numberFrame(type === FRAME_TYPE.data && frame.length >= 5 ? readU32(frame, 1) : undefined);
      writeU32(slab, at, frame.length);
      if (small) slab.set(frame, at + LENGTH_BYTES);
      else enqueueAlone(frame);
      queuedNow(now);
    },
    sendParts(head, body) {
      keyTrace?.('link.send', head.length + body.length);
      if (closed) return;
      // A data head carries its stream; a small payload of a stream with nothing queued may pass bulk.
      const stream = head[0] === FRAME_TYPE.data && head.length >= 5 ? readU32(head, 1) : undefined;
      const at = startParts(head.length, body, stream);
      slab.set(head, at);
      endParts(at + head.length, body);
    },
    sendData(stream, offset, payload) {
      keyTrace?.('link.send', DATA_HEAD_BYTES + payload.length);
      if (closed) return;
      checkDataHead(stream, offset);
      const at = startParts(DATA_HEAD_BYTES, payload, stream);
      writeDataHead(slab, at, stream, offset);
      endParts(at + DATA_HEAD_BYTES, payload);
    },
    sendAck(stream, offset) {
      keyTrace?.('link.send', ACK_FRAME_BYTES);
      if (closed) return;
      checkDataHead(stream, offset);
      // As send() does an encoded ack: small, it may pass queued bulk and keeps no order.
      const now = quiet();
      const passes = mayPass();
      const at = reserve(LENGTH_BYTES + ACK_FRAME_BYTES, passes);
      if (!passes) numberFrame(undefined);
      writeU32(slab, at, ACK_FRAME_BYTES);
      writeAckFrame(slab, at + LENGTH_BYTES, stream, offset);
      queuedNow(now);
    },
    get bufferedAmount() {
      return outBytes + Math.max(inSocket, socket.writableLength);
    },
    // The urgent lane (see `urgent`): a data frame with at most SMALL_FRAME_BYTES of payload.
    priorityFrameBytes: DATA_HEAD_BYTES + SMALL_FRAME_BYTES,
    flush: flushNow,
    willFlush() {
      flushComing = true;
    },
    onDataPart(listener): Disposable {
      dataParts = listener;
      return toDisposable(() => {
        if (dataParts === listener) dataParts = undefined;
      });
    },
    onAck(listener): Disposable {
      acks = listener;
      return toDisposable(() => {
        if (acks === listener) acks = undefined;
      });
    },
    ...transportListeners(
      emitters,
      () => closed,
      () => closeReason ?? LINK_CLOSED,
    ),
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      closeReason = reason;
      // What was sent before (the mux's close frame with the reason) goes out ahead of the FIN.
      ending = true;
      if (!queued()) afterFlush();
      else if (!flushScheduled) flush();
      const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      (timer as { unref?: () => void }).unref?.();
      socket.on('close', () => clearTimeout(timer));
      finish(reason);
    },
    get closed() {
      return closed;
    },
  };
  return transport;
}
