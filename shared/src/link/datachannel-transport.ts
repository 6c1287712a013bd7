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
}

const DEFAULTS = { channelHighWater: 2 * 1024 * 1024, lowWater: 128 * 1024, inFlightAllowance: 192 * 1024 };
/** The FrameTransport "high" line callers expect (the same as the WebSocket adapter's). */
const DRAIN_LOW_WATER = 64 * 1024;

function toBytes(message: string | Uint8Array | ArrayBuffer): Uint8Array | undefined {
  if (message instanceof Uint8Array) return message;
  if (message instanceof ArrayBuffer) return new Uint8Array(message);
  return undefined;
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

/**
 * Wraps an open, ordered, reliable data channel as the link's FrameTransport: frames split into
 * ≤ 64 KiB chunks and joined again on the other side, sends past the channel's high water kept
 * here until it reports low, and a close that takes the channel down before its peer connection.
 * A close reason travels as a last text message, since a data channel's close carries none.
 */
export function wrapDataChannel(channel: DataChannelLike, options: DataChannelTransportOptions = {}): FrameTransport {
  const tuning = { ...DEFAULTS, ...options };
  const frames = new Emitter<Uint8Array>();
  const drains = new Emitter<void>();
  const closes = new Emitter<CloseReason>();
  const unclaimed: Uint8Array[] = [];
  const emitters = { frames, drains, closes, unclaimed };
  /** Chunks waiting for the channel to take them. */
  const queue: Uint8Array[] = [];
  let queuedBytes = 0;
  /** Chunks of the frame being received. */
  let partial: Uint8Array[] = [];
  let partialBytes = 0;
  let wasHigh = false;
  let closed = false;
  let peerReason: CloseReason | undefined;

  const reported = () => queuedBytes + Math.max(0, channel.bufferedAmount() - tuning.inFlightAllowance);

  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    queue.length = 0;
    queuedBytes = 0;
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
    while (queue.length > 0 && !closed && channel.bufferedAmount() < tuning.channelHighWater) {
      const chunk = queue.shift()!;
      queuedBytes -= chunk.length;
      try {
        channel.sendMessageBinary(chunk);
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

  channel.setBufferedAmountLowThreshold(tuning.lowWater);
  channel.onBufferedAmountLow(() => {
    if (!closed) pump();
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
    if (chunk === undefined || chunk.length === 0 || chunk[0]! > CHUNK_LAST) {
      fail('a data-channel message that is not a link chunk');
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

  const transport: FrameTransport = {
    send(frame) {
      if (closed) return;
      for (const chunk of splitFrame(frame)) {
        queue.push(chunk);
        queuedBytes += chunk.length;
      }
      pump();
      if (reported() >= DRAIN_LOW_WATER) wasHigh = true;
    },
    get bufferedAmount() {
      return closed ? 0 : reported();
    },
    ...transportListeners(emitters, () => closed),
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      sendText(reason);
      finish(reason);
    },
    get closed() {
      return closed;
    },
  };
  return transport;
}
