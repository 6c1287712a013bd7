import { Emitter } from '../disposable.js';
import { concatBytes } from '../frames.js';
import { CloseReason } from '../protocol/control.js';
import { LINK_CLOSED, TOO_MANY_UNCLAIMED, deliverFrame, transportListeners, type FrameTransport } from './transport.js';

/**
 * The subset of a WHATWG WebSocket the adapter needs. Browsers' WebSocket and the `ws`
 * package's WebSocket both satisfy it; `ws` additionally accepts a completion callback in
 * send(data, options, cb), which gives exact drain notifications instead of polling.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  send(data: Uint8Array, ...rest: never[]): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
}

/** At or above this many queued bytes the transport is high; below it, onDrain fires. */
export const DRAIN_LOW_WATER = 64 * 1024;
const POLL_MS = 10;
const OPEN = 1;
/** RFC 6455 §5.5: a close frame's payload is at most 125 bytes, 2 of them the code. */
const MAX_CLOSE_REASON_BYTES = 123;
/**
 * First byte of a message that joins whole frames, each behind its length (u16, big-endian), with
 * WebSocketOptions.joinFrames: frame kinds are 1 to 6 (frames.ts), so it is no frame's.
 */
export const JOINED_MESSAGE = 0x80;
const LENGTH_BYTES = 2;
/** Frames up to this many bytes join others (an echo, the ack riding it); bigger ones go alone. */
export const JOIN_FRAME_BYTES = 1024;
/**
 * A joined message is sent once the next frame would take it past this many bytes; a bigger one
 * (or one holding a frame over JOIN_FRAME_BYTES) is refused: no sender of ours makes it, and a
 * 1 MiB message of 1-byte frames would be some 350,000 frames of one message to take apart.
 */
export const JOINED_MESSAGE_BYTES = 16 * 1024;
const resolved = Promise.resolve();

export interface WebSocketOptions {
  /**
   * The small frames sent in one run of the caller's code (until flush(), or the end of the
   * microtask) leave as one WebSocket message. Only toward a peer that said it splits them: the
   * web UI's ends agree on it when the socket opens (uiWebSocketOptions). On the page every
   * message is a trip through Chromium's network process and a task on its main thread: an echo
   * and the ack riding it were two. Implies splitJoined.
   */
  joinFrames?: boolean;
  /**
   * Messages that join frames are split on arrival, whatever this end sends: the web UI's ends,
   * from the start (a page of the build before the agreement joined without asking).
   */
  splitJoined?: boolean;
}

/**
 * The web UI's WebSocket subprotocols (Sec-WebSocket-Protocol), which the page offers in this
 * order. The page and the core that served it need not be one build: a core keeps running while
 * renderer/dist is built again, and a reload fetches the new page with the token it still holds.
 * A core that splits joined messages picks UI_JOINED_FRAMES_PROTOCOL (chooseUiProtocol); a core
 * from before joined frames picks the first offered (`ws`'s default), and then neither end joins.
 */
export const UI_FRAMES_PROTOCOL = 'hangar-frames';
export const UI_JOINED_FRAMES_PROTOCOL = 'hangar-joined-frames';
export const UI_WEBSOCKET_PROTOCOLS: readonly string[] = [UI_FRAMES_PROTOCOL, UI_JOINED_FRAMES_PROTOCOL];

/**
 * The core's pick among the subprotocols a page offered (`ws`'s handleProtocols): joined frames
 * when offered. False (no subprotocol) when it offered none of ours; a page that offers none (a
 * build from before the agreement) is not called here and gets no subprotocol either.
 */
export function chooseUiProtocol(offered: ReadonlySet<string>): string | false {
  if (offered.has(UI_JOINED_FRAMES_PROTOCOL)) return UI_JOINED_FRAMES_PROTOCOL;
  if (offered.has(UI_FRAMES_PROTOCOL)) return UI_FRAMES_PROTOCOL;
  return false;
}

/** Either UI end's options once its WebSocket opened with `protocol` (WebSocket.protocol). */
export function uiWebSocketOptions(protocol: string): WebSocketOptions {
  return { joinFrames: protocol === UI_JOINED_FRAMES_PROTOCOL, splitJoined: true };
}

/** The frames of a joined message (views into it), or why it is malformed. */
export function splitJoinedMessage(message: Uint8Array): Uint8Array[] | string {
  if (message[0] !== JOINED_MESSAGE) return 'not a joined message';
  if (message.length > JOINED_MESSAGE_BYTES) return `a joined message over ${JOINED_MESSAGE_BYTES} bytes`;
  const frames: Uint8Array[] = [];
  let at = 1;
  while (at < message.length) {
    if (at + LENGTH_BYTES > message.length) return 'a joined message ends inside a frame length';
    const length = (message[at]! << 8) | message[at + 1]!;
    at += LENGTH_BYTES;
    if (length === 0) return 'a joined message holds an empty frame';
    if (length > JOIN_FRAME_BYTES) return `a joined message holds a frame over ${JOIN_FRAME_BYTES} bytes`;
    if (length > message.length - at) return 'a joined message ends inside a frame';
    frames.push(message.subarray(at, at + length));
    at += length;
  }
  if (frames.length === 0) return 'an empty joined message';
  return frames;
}

/** `frames` (each at most JOIN_FRAME_BYTES) as one joined message. */
function joinMessage(frames: readonly Uint8Array[], bytes: number): Uint8Array {
  const message = new Uint8Array(1 + bytes);
  message[0] = JOINED_MESSAGE;
  let at = 1;
  for (const frame of frames) {
    message[at] = frame.length >> 8;
    message[at + 1] = frame.length & 0xff;
    message.set(frame, at + LENGTH_BYTES);
    at += LENGTH_BYTES + frame.length;
  }
  return message;
}

type SendWithCallback = (data: Uint8Array, options: object, cb: (error?: Error) => void) => void;

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data; // Node Buffer is a Uint8Array
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data) && data.every((part) => part instanceof Uint8Array)) {
    // `ws` with binaryType 'fragments' hands over the pieces of one message.
    return concatBytes(data as Uint8Array[]);
  }
  return undefined;
}

function encodeCloseReason(reason: CloseReason): string {
  const encoder = new TextEncoder();
  let json = JSON.stringify(reason);
  if (encoder.encode(json).length > MAX_CLOSE_REASON_BYTES) {
    let message = reason.message;
    while (
      message.length > 0 &&
      encoder.encode(JSON.stringify({ ...reason, message })).length > MAX_CLOSE_REASON_BYTES
    ) {
      message = message.slice(0, -8);
    }
    json = JSON.stringify({ ...reason, message });
  }
  return json;
}

function decodeCloseReason(code: number, reason: string): CloseReason {
  try {
    const parsed = CloseReason.safeParse(JSON.parse(reason));
    if (parsed.success) return parsed.data;
  } catch {
    // Not our JSON (a peer or proxy closed with plain text): fall through to a generic reason.
  }
  return { code: code === 1000 ? 'closed' : `websocket_${code}`, message: reason || `WebSocket closed (${code})` };
}

/**
 * Sends of one event-loop turn leave in one socket write: the frames a turn produces (a data
 * frame, the acks of others, a response) would each be a TLS record and a syscall of their own.
 * Except the first frame after a quiet spell, which is written at once (a keystroke, an echo).
 * Node callers pass the TLS socket under the WebSocket and setImmediate (after this turn's I/O).
 */
export interface WriteBatching {
  socket: { cork(): void; uncork(): void };
  later(flush: () => void): void;
}

export function wrapWebSocket(
  ws: WebSocketLike,
  batching?: WriteBatching,
  options: WebSocketOptions = {},
): FrameTransport {
  const joining = options.joinFrames === true;
  const splitting = joining || options.splitJoined === true;
  const sendWithCallback = ws.send.length >= 2 ? (ws.send as unknown as SendWithCallback).bind(ws) : undefined;
  // `ws` hands a message over as the Buffer it parsed into; 'arraybuffer' would copy each one.
  // Browsers know only 'blob' and 'arraybuffer'.
  ws.binaryType = sendWithCallback ? 'nodebuffer' : 'arraybuffer';
  const frames = new Emitter<Uint8Array>();
  const drains = new Emitter<void>();
  const closes = new Emitter<CloseReason>();
  const unclaimed: Uint8Array[] = [];
  const emitters = { frames, drains, closes, unclaimed };
  let pendingBytes = 0;
  let wasHigh = false;
  let poll: unknown;
  let closed = false;
  let closeReason: CloseReason | undefined;

  /** Small frames of this run (joinFrames), copied, waiting to leave as one message. */
  let joined: Uint8Array[] = [];
  /** Their bytes in the joined message (each frame and its length). */
  let joinedBytes = 0;
  let joinScheduled = false;
  /** Set by willFlush() until flush(): the caller sends what it sends before it returns. */
  let flushComing = false;

  const bufferedAmount = () => joinedBytes + (sendWithCallback ? pendingBytes : ws.bufferedAmount);

  const maybeDrain = () => {
    if (wasHigh && bufferedAmount() < DRAIN_LOW_WATER) {
      wasHigh = false;
      if (poll !== undefined) clearInterval(poll);
      poll = undefined;
      drains.fire();
    }
  };

  /**
   * At or over the mark, a drain is owed once it falls below: the mux waits for one whenever it
   * sees bufferedAmount that high, and frames waiting to join count in it too.
   */
  const markIfHigh = () => {
    if (bufferedAmount() < DRAIN_LOW_WATER) return;
    wasHigh = true;
    if (!sendWithCallback && poll === undefined) poll = setInterval(maybeDrain, POLL_MS);
  };

  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    if (poll !== undefined) clearInterval(poll);
    closes.fire(reason);
    frames.dispose();
    drains.dispose();
    closes.dispose();
  };

  ws.addEventListener('message', (event) => {
    if (closed) return;
    const bytes = toBytes(event.data);
    if (bytes === undefined) {
      transport.close({ code: 'E_PROTOCOL', message: 'text WebSocket messages are not part of the link protocol' });
      return;
    }
    if (splitting && bytes[0] === JOINED_MESSAGE) {
      const frames = splitJoinedMessage(bytes);
      if (typeof frames === 'string') {
        transport.close({ code: 'E_PROTOCOL', message: `${frames} (${bytes.length} bytes)` });
        return;
      }
      for (const frame of frames) {
        // A frame's listener may have closed the link: the rest of the message is dropped.
        if (closed) return;
        if (!deliverFrame(emitters, frame)) {
          transport.close({ code: 'E_PROTOCOL', message: TOO_MANY_UNCLAIMED });
          return;
        }
      }
      return;
    }
    if (!deliverFrame(emitters, bytes)) transport.close({ code: 'E_PROTOCOL', message: TOO_MANY_UNCLAIMED });
  });
  ws.addEventListener('close', (event) => {
    finish(closeReason ?? decodeCloseReason(event.code, event.reason));
  });

  let corked = false;
  const cork = (b: WriteBatching) => {
    corked = true;
    b.socket.cork();
    b.later(uncork);
  };
  const uncork = () => {
    corked = false;
    batching!.socket.uncork();
  };

  /** One WebSocket message: a frame, or frames joined. */
  const sendMessage = (frame: Uint8Array) => {
    if (closed || ws.readyState !== OPEN) return;
    // The first frame after a quiet spell (none of ours waiting to be written) goes out at
    // once: a keystroke or its echo must not wait for the rest of the turn. The frames after
    // it in this turn, and every frame while earlier ones are still queued (a flood), batch.
    const first = batching !== undefined && !corked && bufferedAmount() === 0;
    if (batching && !corked && !first) cork(batching);
    if (sendWithCallback) {
      pendingBytes += frame.length;
      sendWithCallback(frame, { binary: true }, () => {
        pendingBytes -= frame.length;
        maybeDrain();
      });
    } else {
      ws.send(frame);
    }
    if (first) cork(batching);
    markIfHigh();
  };

  /** What this run joined so far leaves now: one frame as it is, more as a joined message. */
  const sendJoined = () => {
    joinScheduled = false;
    flushComing = false;
    if (joined.length === 0) return;
    const message = joined.length === 1 ? joined[0]! : joinMessage(joined, joinedBytes);
    joined = [];
    joinedBytes = 0;
    sendMessage(message);
  };

  const transport: FrameTransport = {
    send(frame) {
      if (closed || ws.readyState !== OPEN) return;
      if (!joining) {
        sendMessage(frame);
        return;
      }
      if (frame.length > JOIN_FRAME_BYTES) {
        // Bulk goes alone, uncopied, after the small frames sent before it.
        sendJoined();
        sendMessage(frame);
        return;
      }
      if (1 + joinedBytes + LENGTH_BYTES + frame.length > JOINED_MESSAGE_BYTES) sendJoined();
      // A copy: a caller may reuse its buffer once send() returned.
      joined.push(frame.slice());
      joinedBytes += LENGTH_BYTES + frame.length;
      markIfHigh();
      if (!joinScheduled && !flushComing) {
        joinScheduled = true;
        // A promise reaction, as the mux's pump (queueMicrotask costs an AsyncResource in Node).
        void resolved.then(sendJoined);
      }
    },
    ...(joining
      ? {
          flush: () => {
            if (!closed && ws.readyState === OPEN) sendJoined();
          },
          willFlush: () => {
            flushComing = true;
          },
        }
      : {}),
    get bufferedAmount() {
      return bufferedAmount();
    },
    ...transportListeners(
      emitters,
      () => closed,
      () => closeReason ?? LINK_CLOSED,
    ),
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      // The frames this run joined (the mux's close frame with the reason) go ahead of the close.
      sendJoined();
      closeReason = reason;
      ws.close(1000, encodeCloseReason(reason));
      // The close event arrives after the closing handshake; report it now so owners stop at once.
      finish(reason);
    },
    get closed() {
      return closed;
    },
  };
  return transport;
}
