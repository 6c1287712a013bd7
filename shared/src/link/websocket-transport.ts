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

export function wrapWebSocket(ws: WebSocketLike, batching?: WriteBatching): FrameTransport {
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

  const bufferedAmount = () => (sendWithCallback ? pendingBytes : ws.bufferedAmount);

  const maybeDrain = () => {
    if (wasHigh && bufferedAmount() < DRAIN_LOW_WATER) {
      wasHigh = false;
      if (poll !== undefined) clearInterval(poll);
      poll = undefined;
      drains.fire();
    }
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

  const transport: FrameTransport = {
    send(frame) {
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
      if (bufferedAmount() >= DRAIN_LOW_WATER) {
        wasHigh = true;
        if (!sendWithCallback && poll === undefined) poll = setInterval(maybeDrain, POLL_MS);
      }
    },
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
