import { Emitter } from '../disposable.js';
import { MAX_FRAME_BYTES, concatBytes } from '../frames.js';
import type { CloseReason } from '../protocol/control.js';
import {
  TOO_MANY_UNCLAIMED,
  deliverFrame,
  transportListeners,
  type FrameTransport,
  type TransportFeature,
} from './transport.js';

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
/**
 * First byte of a message that says how many bytes of frame-carrying messages (kinds 0 to 2) this
 * side has received and handed on since the channel opened (a float64, big-endian). Sent only to a
 * peer that paces on them (PACED_FEATURE).
 */
const CONSUMED = 3;
const CONSUMED_BYTES = 9;
/**
 * The handshake's name for "this side reports what it consumed, and paces on the peer's reports":
 * once both name it, each side keeps at most `cap` bytes between its send() and the peer's
 * consumer (the library's queue, SCTP's send buffer, the network, the peer's callback queue), and
 * the rest in its own queues, where small frames go ahead of big data frames of other streams.
 */
export const PACED_FEATURE = 'dc-paced';
/** A report goes once this many bytes arrived since the last one. */
const REPORT_EVERY = 64 * 1024;
/**
 * Bounds of the bytes kept in flight while pacing: at least PACE_MIN (a few reports' worth; on
 * loopback the whole pipe), at most PACE_MAX; in between twice what the measured delivery rate
 * moves in the least round trip seen (what a 20 ms path needs to stay full).
 */
const PACE_MIN = 256 * 1024;
const PACE_MAX = 4 * 1024 * 1024;
/** A data frame larger than this is bulk: while pacing, it waits behind the smaller frames of other streams. */
const BULK_DATA_FRAME_BYTES = 8 * 1024;
/** Frame kinds with a stream id at bytes 1 to 4 (frames.ts: data, ack, close). */
const FRAME_DATA = 2;
const FRAME_ACK = 3;
const FRAME_CLOSE = 4;

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
  /** Milliseconds, monotonic (performance.now() by default): round trips of the pacing reports. */
  now?: () => number;
  /**
   * The path's round trip as the channel's own transport measures it (SCTP's estimate, ms), or
   * null while it has none: pacing keeps twice what the delivery rate moves in the least of these.
   * Without it, the round trips of the reports of messages sent with little ahead of them count.
   */
  roundTripMs?: () => number | null;
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
  /** PACED_FEATURE, turned on by the handshake when both sides name it. */
  paced: TransportFeature & {
    /** Bytes this side keeps in flight at most now (while pacing). */
    readonly cap: number;
  };
  /**
   * Calls `onOver` once when the peer has sent more than `bytes` (every message counted as it
   * arrives, before any frame is joined) from now until the returned function is called: the link
   * server's allowance for a peer that has not authenticated, as its TCP paths count socket bytes.
   */
  limitReceived(bytes: number, onOver: (received: number) => void): () => void;
}

/** The stream a data, ack or close frame belongs to; undefined for the rest (control, ping, pong). */
function streamOf(frame: Uint8Array): number | undefined {
  const kind = frame[0];
  if (frame.length < 5 || (kind !== FRAME_DATA && kind !== FRAME_ACK && kind !== FRAME_CLOSE)) return undefined;
  return new DataView(frame.buffer, frame.byteOffset, 5).getUint32(1);
}

/** A chunk of a bulk frame waiting to leave: its stream, and whether it ends the frame. */
interface BulkChunk {
  message: Uint8Array;
  stream: number;
  last: boolean;
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
  const now = options.now ?? (() => performance.now());
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

  // Pacing (PACED_FEATURE): what this side sent and what the peer says it consumed, in bytes of
  // frame-carrying messages since the channel opened; the bulk frames kept back meanwhile.
  let pacing = false;
  let sentTotal = 0;
  let consumedByPeer = 0;
  let receivedTotal = 0;
  let reportedTotal = 0;
  let cap = PACE_MIN;
  const bulk: BulkChunk[] = [];
  let bulkHead = 0;
  let bulkBytes = 0;
  /** Frames per stream with chunks in `bulk`: that stream's later frames queue behind them. */
  const bulkFrames = new Map<number, number>();
  /** When each message in flight was sent (its end as sentTotal), for round trips; oldest first. */
  const sendTimes: { end: number; at: number; clean: boolean }[] = [];
  let sendTimesHead = 0;
  let leastRoundTrip = Infinity;
  /** Delivery rate, bytes/ms: the best of the current and the previous second. */
  let rateSince = 0;
  let rateFrom = 0;
  let rateMark = 0;
  let rateBest = 0;
  let ratePrevious = 0;

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

  const reported = () =>
    queuedBytes + bulkBytes + turnBytes - 1 + Math.max(0, channelAmount() - tuning.inFlightAllowance);

  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    queue.length = 0;
    queuedBytes = 0;
    bulk.length = 0;
    bulkHead = 0;
    bulkBytes = 0;
    bulkFrames.clear();
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

  /** Hands one message to the channel; false when that failed (and the transport closed). */
  const put = (message: Uint8Array): boolean => {
    channelBound += message.length;
    sentTotal += message.length;
    // Round trips from the reports only where the channel has no estimate of its own: a message
    // sent with little ahead of it measures the path, not the queue this side made.
    if (pacing && !options.roundTripMs)
      sendTimes.push({ end: sentTotal, at: now(), clean: sentTotal - consumedByPeer <= REPORT_EVERY + message.length });
    try {
      channel.sendMessageBinary(message);
      return true;
    } catch (error) {
      finish({ code: 'E_UNAVAILABLE', message: `data channel send failed: ${String(error)}` });
      return false;
    }
  };

  const pump = () => {
    while (queue.length > 0 && !closed && channelAmount() < tuning.channelHighWater) {
      const message = queue.shift()!;
      queuedBytes -= message.length;
      if (!put(message)) return;
    }
    // Bulk chunks only once the small frames went, and while pacing only within the cap.
    while (
      queue.length === 0 &&
      bulkHead < bulk.length &&
      !closed &&
      channelAmount() < tuning.channelHighWater &&
      (!pacing || sentTotal - consumedByPeer < cap)
    ) {
      const chunk = bulk[bulkHead]!;
      bulk[bulkHead++] = undefined as unknown as BulkChunk;
      if (bulkHead === bulk.length || bulkHead > 1024) {
        bulk.splice(0, bulkHead);
        bulkHead = 0;
      }
      bulkBytes -= chunk.message.length;
      if (chunk.last) {
        const left = (bulkFrames.get(chunk.stream) ?? 1) - 1;
        if (left === 0) bulkFrames.delete(chunk.stream);
        else bulkFrames.set(chunk.stream, left);
      }
      if (!put(chunk.message)) return;
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

  /**
   * While pacing: the key under which `frame` waits in the bulk queue (a big data frame, a frame
   * too big to join, or any frame of a stream that has one waiting there: a stream's frames stay
   * in order), or undefined: it goes ahead, joined with the turn's other small frames.
   */
  const isBulk = (frame: Uint8Array): number | undefined => {
    // Control, ping and pong frames keep their order among themselves under one key.
    const key = streamOf(frame) ?? -1;
    if (frame[0] === FRAME_DATA && frame.length > BULK_DATA_FRAME_BYTES) return key;
    // Too big to join: it goes in chunks, and only the bulk queue's chunks may be split by others.
    if (frame.length > MAX_JOINED_FRAME_BYTES) return key;
    return bulkFrames.has(key) ? key : undefined;
  };

  const enqueueBulk = (frame: Uint8Array, stream: number) => {
    const chunks = splitFrame(frame);
    chunks.forEach((message, i) => bulk.push({ message, stream, last: i === chunks.length - 1 }));
    bulkBytes += frame.length + chunks.length;
    bulkFrames.set(stream, (bulkFrames.get(stream) ?? 0) + 1);
  };

  /** The peer consumed `total` bytes in all: a round trip, the delivery rate, and room for bulk. */
  const consumed = (total: number) => {
    const at = now();
    let sentAt: number | undefined;
    while (sendTimesHead < sendTimes.length && sendTimes[sendTimesHead]!.end <= total) {
      const sent = sendTimes[sendTimesHead++]!;
      sentAt = sent.clean ? sent.at : undefined;
    }
    if (sendTimesHead > 1024 || sendTimesHead === sendTimes.length) {
      sendTimes.splice(0, sendTimesHead);
      sendTimesHead = 0;
    }
    const measured = options.roundTripMs ? options.roundTripMs() : sentAt === undefined ? null : at - sentAt;
    if (measured !== null && measured >= 0) leastRoundTrip = Math.min(leastRoundTrip, Math.max(0.5, measured));
    if (at - rateSince >= 1000) {
      ratePrevious = rateBest;
      rateBest = 0;
      rateSince = at;
    }
    // The rate over at least 20 ms, so one report's burst does not count as a rate.
    if (at - rateFrom >= 20) {
      if (rateFrom > 0) rateBest = Math.max(rateBest, (total - rateMark) / (at - rateFrom));
      rateFrom = at;
      rateMark = total;
    }
    consumedByPeer = total;
    const rate = Math.max(rateBest, ratePrevious);
    if (Number.isFinite(leastRoundTrip) && rate > 0) {
      cap = Math.min(PACE_MAX, Math.max(PACE_MIN, Math.round(2 * rate * leastRoundTrip)));
    }
    pump();
  };

  /** The frames of this turn so far leave as one message (one frame: as a plain last chunk). */
  const flushTurn = () => {
    if (turnFrames === 0) return;
    let message: Uint8Array;
    if (turnFrames === 1 && !pacing) {
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

  /** The pre-authentication allowance while it applies; once over, nothing more is read. */
  let limit: { bytes: number; seen: number; onOver: (received: number) => void } | undefined;
  let overLimit = false;

  channel.onMessage((message) => {
    if (closed || overLimit) return;
    if (limit !== undefined) {
      limit.seen += typeof message === 'string' ? new TextEncoder().encode(message).length : message.byteLength;
      if (limit.seen > limit.bytes) {
        overLimit = true;
        const { onOver, seen } = limit;
        limit = undefined;
        onOver(seen);
        return;
      }
    }
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
    if (chunk !== undefined && chunk[0] === CONSUMED && pacing) {
      const total = chunk.length === CONSUMED_BYTES ? new DataView(chunk.buffer, chunk.byteOffset).getFloat64(1) : NaN;
      if (!Number.isSafeInteger(total) || total < consumedByPeer || total > sentTotal) {
        fail('a consumed report that is malformed or counts bytes never sent');
        return;
      }
      consumed(total);
      return;
    }
    if (chunk === undefined || chunk.length === 0 || chunk[0]! > JOINED) {
      fail('a data-channel message that is not a link chunk');
      return;
    }
    receivedTotal += chunk.length;
    try {
      received(chunk);
    } finally {
      if (pacing && !closed && receivedTotal - reportedTotal >= REPORT_EVERY) report();
    }
  });

  /** Tells the peer how much arrived and was handed on (PACED_FEATURE). */
  const report = () => {
    reportedTotal = receivedTotal;
    const message = new Uint8Array(CONSUMED_BYTES);
    message[0] = CONSUMED;
    new DataView(message.buffer).setFloat64(1, receivedTotal);
    try {
      channel.sendMessageBinary(message);
    } catch {
      // The channel is going; its close tells the rest.
    }
  };

  /** A message with frames (kinds 0 to 2). */
  const received = (chunk: Uint8Array) => {
    if (chunk[0] === JOINED) {
      if (partial.length > 0 && !pacing) {
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
  };
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
    // Every frame waits for the end of its turn (setImmediate: after this turn's I/O callbacks),
    // the first too: a turn is one message. Sending the first at once (a keystroke need not wait
    // for the rest of the turn) made two under load (the first alone, then the rest), and
    // measured no faster for a keystroke's echo, whose turn holds little else.
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
      const bulkStream = pacing ? isBulk(frame) : undefined;
      if (bulkStream !== undefined) {
        // What this turn joined so far goes ahead (it was sent first, and bulk waits for it).
        flushTurn();
        enqueueBulk(frame, bulkStream);
        pump();
      } else if (joining || pacing) sendJoining(frame);
      else {
        for (const chunk of splitFrame(frame)) enqueue(chunk);
        pump();
      }
      if (reported() >= DRAIN_LOW_WATER) wasHigh = true;
    },
    get bufferedAmount() {
      return closed ? 0 : reported();
    },
    get priorityFrameBytes() {
      return pacing ? BULK_DATA_FRAME_BYTES : undefined;
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
    paced: {
      feature: PACED_FEATURE,
      enable() {
        pacing = true;
      },
      get enabled() {
        return pacing;
      },
      get cap() {
        return cap;
      },
    },
    limitReceived(bytes, onOver) {
      const own = { bytes, seen: 0, onOver };
      limit = own;
      return () => {
        if (limit === own) limit = undefined;
      };
    },
  };
  transport.moreFeatures = [transport.paced];
  return transport;
}
