import { Emitter } from '../disposable.js';
import { MAX_FRAME_BYTES, concatBytes } from '../frames.js';
import type { CloseReason } from '../protocol/control.js';
import { TOO_MANY_UNCLAIMED, deliverFrame, transportListeners, type FrameTransport } from './transport.js';

/**
 * The subset of a WebRTC data channel the adapter needs: node-datachannel's DataChannel satisfies
 * it (a browser's RTCDataChannel would through a few lines of glue). The channel must be ordered
 * and reliable: the link relies on every message arriving once, in order.
 */
export interface DataChannelLike {
  sendMessageBinary(buffer: Uint8Array): boolean;
  sendMessage(text: string): boolean;
  bufferedAmount(): number;
  setBufferedAmountLowThreshold(bytes: number): void;
  onBufferedAmountLow(listener: () => void): void;
  onMessage(listener: (message: string | Uint8Array | ArrayBuffer) => void): void;
  onClosed(listener: () => void): void;
  onError(listener: (error: string) => void): void;
  isOpen(): boolean;
  close(): void;
}

/**
 * A data-channel message carries at most this many bytes, header included: 64 KiB goes through
 * every WebRTC stack (browsers' and libraries' limits start at 64 KiB; above it some throw, some
 * close the channel). Frames are up to MAX_FRAME_BYTES, so they travel as one or more chunks.
 */
export const DATACHANNEL_MESSAGE_BYTES = 64 * 1024;
const CHUNK_PAYLOAD_BYTES = DATACHANNEL_MESSAGE_BYTES - 1;
/** First byte of each chunk: more chunks of this frame follow, or this one ends it. */
const CHUNK_MORE = 0;
const CHUNK_LAST = 1;
/**
 * First byte of a message that joins whole frames, each behind its length (4 bytes, big-endian).
 * Sent only to a peer that said in the handshake that it splits them (JOINED_FRAMES_FEATURE): every
 * message is one trip through the library's lock, SCTP, DTLS and a UDP datagram, and a preview's
 * turn produces a handful of small frames (data, acks) for many streams at once.
 */
const JOINED = 2;
const LENGTH_BYTES = 4;
/** The largest frame that joins others: one that fits a message beside its length. */
const MAX_JOINED_FRAME_BYTES = DATACHANNEL_MESSAGE_BYTES - 1 - LENGTH_BYTES;
/** The handshake's name for "this side splits joined messages" (LinkHello/LinkChallenge.transport_features). */
export const JOINED_FRAMES_FEATURE = 'dc-joined-frames';

export interface DataChannelTransportOptions {
  /**
   * Bytes the channel itself may hold before chunks wait here instead; past a few MiB stacks close
   * the channel. The link's own senders stop long before (the mux's high water).
   */
  channelHighWater?: number;
  /** The channel reports "low" below this; queued chunks move on and onDrain may fire. */
  lowWater?: number;
  /**
   * Bytes of the channel's buffer that count as on the network already: SCTP keeps what it has not
   * had acknowledged in the same buffer, so a sender that waited for it to empty would leave the
   * path idle for a round trip at each refill. bufferedAmount reports what lies above this.
   */
  inFlightAllowance?: number;
  /** Called once after the channel closed (close the peer connection here, channel first). */
  onClosed?: () => void;
  /**
   * Runs `flush` after this turn's I/O (Node: setImmediate, the default where it exists): once
   * joining is on, the frames of one turn leave together then.
   */
  later?: (flush: () => void) => void;
}

const DEFAULTS = { channelHighWater: 2 * 1024 * 1024, lowWater: 128 * 1024, inFlightAllowance: 192 * 1024 };
/** The FrameTransport "high" line callers expect (the same as the WebSocket adapter's). */
const DRAIN_LOW_WATER = 64 * 1024;

function toBytes(message: string | Uint8Array | ArrayBuffer): Uint8Array | undefined {
  if (message instanceof Uint8Array) return message;
  if (message instanceof ArrayBuffer) return new Uint8Array(message);
  return undefined;
}

const defaultLater: (flush: () => void) => void =
  (globalThis as { setImmediate?: (flush: () => void) => unknown }).setImmediate ?? ((flush) => setTimeout(flush, 0));

/** The frames of a joined message (views into it), or why it is malformed. */
function splitJoined(message: Uint8Array): Uint8Array[] | string {
  if (message[0] !== JOINED) return 'not a joined message';
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const frames: Uint8Array[] = [];
  let at = 1;
  while (at < message.length) {
    if (at + LENGTH_BYTES > message.length) return 'a joined message ends inside a frame length';
    const length = view.getUint32(at);
    at += LENGTH_BYTES;
    if (length > message.length - at) return 'a joined message ends inside a frame';
    frames.push(message.subarray(at, at + length));
    at += length;
  }
  if (frames.length === 0) return 'an empty joined message';
  return frames;
}

/** Splits one frame into chunks of at most DATACHANNEL_MESSAGE_BYTES (exported for tests). */
export function splitFrame(frame: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  do {
    const end = Math.min(frame.length, at + CHUNK_PAYLOAD_BYTES);
    const chunk = new Uint8Array(1 + end - at);
    chunk[0] = end === frame.length ? CHUNK_LAST : CHUNK_MORE;
    chunk.set(frame.subarray(at, end), 1);
    chunks.push(chunk);
    at = end;
  } while (at < frame.length);
  return chunks;
}

/** The WebRTC FrameTransport: see wrapDataChannel. */
export interface DataChannelTransport extends FrameTransport {
  joinedFrames: NonNullable<FrameTransport['joinedFrames']>;
}

/**
 * Wraps an open, ordered, reliable data channel as the link's FrameTransport: frames split into
 * ≤ 64 KiB chunks and joined again on the other side, sends past the channel's high water kept
 * here until it reports low, and a close that takes the channel down before its peer connection.
 * A close reason travels as a last text message, since a data channel's close carries none.
 * Once the handshake found that the peer splits joined messages (joinedFrames.enable()), the small
 * frames of one event-loop turn leave as one message; messages of every kind are understood here
 * from the start, whatever this side sends.
 */
export function wrapDataChannel(
  channel: DataChannelLike,
  options: DataChannelTransportOptions = {},
): DataChannelTransport {
  const tuning = { ...DEFAULTS, ...options };
  const later = options.later ?? defaultLater;
  const frames = new Emitter<Uint8Array>();
  const drains = new Emitter<void>();
  const closes = new Emitter<CloseReason>();
  const unclaimed: Uint8Array[] = [];
  const emitters = { frames, drains, closes, unclaimed };
  /** Messages waiting for the channel to take them. */
  const queue: Uint8Array[] = [];
  let queuedBytes = 0;
  /** Chunks of the frame being received. */
  let partial: Uint8Array[] = [];
  let partialBytes = 0;
  let wasHigh = false;
  let closed = false;
  let peerReason: CloseReason | undefined;
  /**
   * The joined message of this turn so far (joining on only), copied in as frames come: a caller
   * may reuse its buffer once send() returned. 1 byte of kind, then each frame behind its length.
   */
  const turn = new Uint8Array(DATACHANNEL_MESSAGE_BYTES);
  const turnView = new DataView(turn.buffer);
  turn[0] = JOINED;
  let turnFrames = 0;
  let turnBytes = 1;
  let turnOpen = false;
  let joining = false;

  /**
   * The channel's bufferedAmount, or a bound above it: the library reads it under the lock its
   * SCTP thread holds while it works, so it is read again only where a decision hangs on it (at
   * or above the lowest line that matters). Between reads it only falls, except by what we send.
   */
  const decisionLine = Math.min(tuning.inFlightAllowance, tuning.channelHighWater);
  let channelBound = 0;
  const channelAmount = () => {
    if (channelBound >= decisionLine) channelBound = channel.bufferedAmount();
    return channelBound;
  };

  const reported = () => queuedBytes + turnBytes - 1 + Math.max(0, channelAmount() - tuning.inFlightAllowance);

  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    queue.length = 0;
    queuedBytes = 0;
    turnFrames = 0;
    turnBytes = 1;
    partial = [];
    try {
      channel.close();
    } catch {
      // Already closed underneath (the peer connection went first): nothing left to close.
    }
    options.onClosed?.();
    closes.fire(reason);
    frames.dispose();
    drains.dispose();
    closes.dispose();
  };

  const fail = (message: string) => {
    const reason = { code: 'E_PROTOCOL', message };
    sendText(reason);
    finish(reason);
  };

  const sendText = (reason: CloseReason) => {
    try {
      if (channel.isOpen()) channel.sendMessage(JSON.stringify(reason));
    } catch {
      // The channel is going anyway.
    }
  };

  const pump = () => {
    while (queue.length > 0 && !closed && channelAmount() < tuning.channelHighWater) {
      const message = queue.shift()!;
      queuedBytes -= message.length;
      channelBound += message.length;
      try {
        channel.sendMessageBinary(message);
      } catch (error) {
        finish({ code: 'E_UNAVAILABLE', message: `data channel send failed: ${String(error)}` });
        return;
      }
    }
    if (wasHigh && !closed && reported() < DRAIN_LOW_WATER) {
      wasHigh = false;
      drains.fire();
    }
  };

  const enqueue = (message: Uint8Array) => {
    queue.push(message);
    queuedBytes += message.length;
  };

  /** The frames of this turn so far leave as one message (one frame: as a plain last chunk). */
  const flushTurn = () => {
    if (turnFrames === 0) return;
    let message: Uint8Array;
    if (turnFrames === 1) {
      // One frame: a plain last chunk (its length's last byte becomes the chunk's kind).
      message = turn.slice(LENGTH_BYTES, turnBytes);
      message[0] = CHUNK_LAST;
    } else {
      message = turn.slice(0, turnBytes);
    }
    turnFrames = 0;
    turnBytes = 1;
    enqueue(message);
  };

  const endTurn = () => {
    turnOpen = false;
    if (closed || turnFrames === 0) return;
    flushTurn();
    pump();
  };

  channel.setBufferedAmountLowThreshold(tuning.lowWater);
  channel.onBufferedAmountLow(() => {
    if (closed) return;
    channelBound = channel.bufferedAmount();
    pump();
  });

  const deliver = (frame: Uint8Array) => {
    if (!deliverFrame(emitters, frame)) fail(TOO_MANY_UNCLAIMED);
  };

  channel.onMessage((message) => {
    if (closed) return;
    if (typeof message === 'string') {
      // The peer's reason, sent just before it closed the channel.
      try {
        const parsed = JSON.parse(message) as Partial<CloseReason>;
        if (typeof parsed.code === 'string' && typeof parsed.message === 'string') {
          peerReason = { code: parsed.code.slice(0, 64), message: parsed.message.slice(0, 1000) };
          return;
        }
      } catch {
        // fall through
      }
      fail('text data-channel messages other than a close reason are not part of the link protocol');
      return;
    }
    const chunk = toBytes(message);
    if (chunk === undefined || chunk.length === 0 || chunk[0]! > JOINED) {
      fail('a data-channel message that is not a link chunk');
      return;
    }
    if (chunk[0] === JOINED) {
      if (partial.length > 0) {
        fail('joined frames inside a frame that was split in chunks');
        return;
      }
      const joined = splitJoined(chunk);
      if (typeof joined === 'string') {
        fail(joined);
        return;
      }
      for (const frame of joined) {
        if (closed) return;
        deliver(frame);
      }
      return;
    }
    const payload = chunk.subarray(1);
    if (chunk[0] === CHUNK_LAST && partial.length === 0) {
      deliver(payload);
      return;
    }
    partialBytes += payload.length;
    if (partialBytes > MAX_FRAME_BYTES) {
      fail(`a frame larger than ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    partial.push(payload);
    if (chunk[0] === CHUNK_MORE) return;
    const frame = concatBytes(partial);
    partial = [];
    partialBytes = 0;
    deliver(frame);
  });
  channel.onClosed(() => finish(peerReason ?? { code: 'closed', message: 'the data channel closed' }));
  channel.onError((error) => finish(peerReason ?? { code: 'E_UNAVAILABLE', message: `data channel error: ${error}` }));

  const sendJoining = (frame: Uint8Array) => {
    if (frame.length > MAX_JOINED_FRAME_BYTES) {
      // Too big to join: what this turn joined so far goes first, then this frame in chunks.
      flushTurn();
      for (const chunk of splitFrame(frame)) enqueue(chunk);
      pump();
      return;
    }
    // The first frame after a quiet spell (nothing of ours waiting) goes at once: a keystroke or
    // its echo must not wait for the rest of the turn. The frames after it in this turn, and
    // every frame while earlier ones still wait, are joined and leave when the turn ends.
    if (!turnOpen && queue.length === 0 && reported() === 0) {
      turnOpen = true;
      later(endTurn);
      enqueue(splitFrame(frame)[0]!);
      pump();
      return;
    }
    if (turnBytes + LENGTH_BYTES + frame.length > DATACHANNEL_MESSAGE_BYTES) {
      flushTurn();
      pump();
    }
    turnView.setUint32(turnBytes, frame.length);
    turn.set(frame, turnBytes + LENGTH_BYTES);
    turnBytes += LENGTH_BYTES + frame.length;
    turnFrames++;
    if (!turnOpen) {
      turnOpen = true;
      later(endTurn);
    }
  };

  const transport: DataChannelTransport = {
    send(frame) {
      if (closed) return;
      if (joining) sendJoining(frame);
      else {
        for (const chunk of splitFrame(frame)) enqueue(chunk);
        pump();
      }
      if (reported() >= DRAIN_LOW_WATER) wasHigh = true;
    },
    get bufferedAmount() {
      return closed ? 0 : reported();
    },
    ...transportListeners(emitters, () => closed),
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      // What this turn joined goes before the reason.
      flushTurn();
      pump();
      sendText(reason);
      finish(reason);
    },
    get closed() {
      return closed;
    },
    joinedFrames: {
      feature: JOINED_FRAMES_FEATURE,
      enable() {
        joining = true;
      },
      get enabled() {
        return joining;
      },
    },
  };
  return transport;
}
