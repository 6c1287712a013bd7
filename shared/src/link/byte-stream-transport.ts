import { Emitter, toDisposable, type Disposable } from '../disposable.js';
import { HangarError } from '../errors.js';
import { MAX_FRAME_BYTES } from '../frames.js';
import type { CloseReason } from '../protocol/control.js';
import { keyTrace } from './key-trace.js';
import type { FrameTransport } from './transport.js';

/**
 * ALPN name of the link carried straight on TLS: each frame is a u32 big-endian length and the
 * frame's bytes, nothing else. Offered by Node clients next to `http/1.1` (WebSocket, which old
 * agents and browsers speak); the agent picks it when it knows it. ALPN is part of the TLS 1.3
 * handshake, so the link handshake's binding to the TLS exporter covers the choice too.
 */
export const RAW_LINK_ALPN = 'hangar-link/1';

const LENGTH_BYTES = 4;
/** Frames up to this size are copied behind their length: one write instead of two. */
const SMALL_FRAME_BYTES = 1024;
/** At or above this many queued bytes the transport is high; onDrain fires once it empties. */
const HIGH_WATER = 64 * 1024;
/** Frames kept while nobody listens (between handshake and the link owner subscribing). */
const MAX_UNCLAIMED_FRAMES = 4096;
/** A peer that neither closes nor reads after our close is cut off after this long. */
const CLOSE_GRACE_MS = 2000;

/**
 * The part of a byte socket (Node's TLSSocket) the transport needs. Structural, so this file
 * stays platform-neutral; only Node processes use it (browsers keep WebSocket).
 */
export interface DuplexByteSocket {
  write(data: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
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
 * view of it (no copy); only a frame split across reads is copied, once, into its own buffer.
 */
export class FrameReader {
  /** Bytes of an incomplete length prefix. */
  private prefix = new Uint8Array(LENGTH_BYTES);
  private prefixHave = 0;
  /** The frame being filled across reads, and how much of it has arrived. */
  private partial: Uint8Array | undefined;
  private partialHave = 0;

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Calls `onFrame` for each frame `chunk` completes; throws E_PROTOCOL on a bad length. */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.partial !== undefined) {
        const take = Math.min(this.partial.length - this.partialHave, chunk.length - at);
        this.partial.set(chunk.subarray(at, at + take), this.partialHave);
        this.partialHave += take;
        at += take;
        if (this.partialHave === this.partial.length) {
          const frame = this.partial;
          this.partial = undefined;
          onFrame(frame);
        }
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
        onFrame(chunk.subarray(at, at + length));
        at += length;
      } else {
        this.partial = new Uint8Array(length);
        this.partialHave = 0;
      }
    }
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
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

export interface ByteStreamBatching {
  /** Runs `flush` after this turn's I/O (Node: setImmediate): a turn's frames leave in one write. */
  later(flush: () => void): void;
}

/**
 * The link straight on a TLS socket (RAW_LINK_ALPN), for Node peers: no WebSocket framing, no
 * client masking (RFC 6455 masks every client frame, a copy and an XOR per byte that TLS makes
 * pointless), no per-message header parsing. The frames of one event-loop turn are corked into
 * one write: one TLS record run and one syscall instead of one per frame; except the first
 * small frame after a quiet spell, which leaves at once.
 */
export function wrapByteStream(socket: DuplexByteSocket, batching: ByteStreamBatching): FrameTransport {
  const frames = new Emitter<Uint8Array>();
  const drains = new Emitter<void>();
  const closes = new Emitter<CloseReason>();
  const unclaimed: Uint8Array[] = [];
  const reader = new FrameReader();
  let closed = false;
  let closeReason: CloseReason | undefined;
  let wasHigh = false;
  let corked = false;

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
    if (frames.hasListeners) {
      frames.fire(frame);
    } else if (unclaimed.length < MAX_UNCLAIMED_FRAMES) {
      unclaimed.push(frame);
    } else {
      transport.close({ code: 'E_PROTOCOL', message: 'peer sent too many frames before the link was ready' });
    }
  };

  socket.on('data', (chunk) => {
    keyTrace?.('link.read', chunk.length);
    if (closed) return;
    try {
      reader.push(chunk, deliver);
    } catch (error) {
      transport.close({ code: 'E_PROTOCOL', message: `peer broke the link's framing: ${(error as Error).message}` });
      socket.destroy();
    }
  });
  socket.on('drain', () => {
    if (wasHigh && !closed) {
      wasHigh = false;
      drains.fire();
    }
  });
  socket.on('error', (error) => {
    finish(closeReason ?? { code: 'E_UNAVAILABLE', message: `link connection failed: ${error.message}` });
  });
  socket.on('close', () => finish(closeReason ?? { code: 'closed', message: 'link connection closed' }));

  const uncork = () => {
    corked = false;
    socket.uncork();
    keyTrace?.('link.flushed', socket.writableLength);
  };
  /**
   * A small frame when none of ours waits to be written (a keystroke, its echo, after a pause)
   * is written at once, not at the end of the turn: the rest of the turn, and every frame while
   * earlier ones are still queued (a flood), is corked behind it.
   */
  const firstAfterQuiet = () => !corked && socket.writableLength === 0;
  const wroteFirst = () => {
    keyTrace?.('link.flushed', socket.writableLength);
    batch();
  };
  const batch = () => {
    if (corked) return;
    corked = true;
    socket.cork();
    batching.later(uncork);
  };

  const transport: FrameTransport = {
    send(frame) {
      keyTrace?.('link.send', frame.length);
      if (closed) return;
      if (frame.length <= SMALL_FRAME_BYTES) {
        const first = firstAfterQuiet();
        if (!first) batch();
        socket.write(encodeLengthPrefixed(frame));
        if (first) wroteFirst();
      } else {
        batch();
        // Corked, the two writes leave together (writev); the frame itself is not copied here.
        const prefix = new Uint8Array(LENGTH_BYTES);
        writeU32(prefix, 0, frame.length);
        socket.write(prefix);
        socket.write(frame);
      }
      if (socket.writableLength >= HIGH_WATER) wasHigh = true;
    },
    sendParts(head, body) {
      keyTrace?.('link.send', head.length + body.length);
      if (closed) return;
      const length = head.length + body.length;
      if (length > MAX_FRAME_BYTES)
        throw new HangarError('E_PROTOCOL', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
      // A small payload (a request, a keystroke) is cheaper copied than written on its own.
      const small = body.length <= SMALL_FRAME_BYTES;
      const first = small && firstAfterQuiet();
      if (!first) batch();
      const prefixed = new Uint8Array(LENGTH_BYTES + head.length + (small ? body.length : 0));
      writeU32(prefixed, 0, length);
      prefixed.set(head, LENGTH_BYTES);
      if (small) prefixed.set(body, LENGTH_BYTES + head.length);
      socket.write(prefixed);
      // Corked, the two writes leave together (writev): a big payload is never copied in JS.
      if (!small) socket.write(body);
      if (first) wroteFirst();
      if (socket.writableLength >= HIGH_WATER) wasHigh = true;
    },
    get bufferedAmount() {
      return socket.writableLength;
    },
    onFrame(listener): Disposable {
      const subscription = frames.event(listener);
      // Deliver what arrived while nobody listened, in order, before anything newer.
      while (unclaimed.length > 0 && !closed) listener(unclaimed.shift()!);
      return subscription;
    },
    onDrain: (listener) => drains.event(listener),
    onClose(listener) {
      if (closed) {
        const reason = closeReason ?? { code: 'closed', message: 'link closed' };
        queueMicrotask(() => listener(reason));
        return toDisposable(() => undefined);
      }
      return closes.event(listener);
    },
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      closeReason = reason;
      if (corked) uncork();
      // What was sent before (the mux's close frame with the reason) goes out ahead of the FIN.
      socket.end();
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
