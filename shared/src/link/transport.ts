import { toDisposable, type Disposable, type Emitter } from '../disposable.js';
import type { CloseReason } from '../protocol/control.js';
import type { ReadLease } from './read-lease.js';

/**
 * `lease`, when given: `payload` is a view of a pooled read buffer, which goes back to its pool
 * once the listener returns unless the listener holds or keeps the lease (ReadLease).
 */
export type DataPartListener = (stream: number, offset: number, payload: Uint8Array, lease?: ReadLease) => void;

/** An ack frame for `stream` up to `offset` (FrameTransport.onAck). */
export type AckListener = (stream: number, offset: number) => void;

/**
 * A message-oriented, ordered, reliable, encrypted pipe between two peers: one message is one
 * frame. WebSocket over TLS implements it today; a WebRTC data channel (ordered, reliable)
 * implements it next without the link or its callers changing.
 */
export interface FrameTransport {
  send(frame: Uint8Array): void;
  /**
   * Optional: sends one frame given as two parts (a data frame's head and its payload), as if
   * send() got them joined. A transport that writes to a byte stream sends them without joining
   * them (no copy of the payload); others leave it out and get send().
   */
  sendParts?(head: Uint8Array, body: Uint8Array): void;
  /**
   * Optional: sends a data frame for `stream` at `offset` with `payload`, as if send() got it
   * encoded. A transport that writes frames into a buffer of its own writes the head there (no
   * head object per frame); the mux prefers it to sendParts. Throws E_PROTOCOL, sending nothing,
   * when the stream or offset cannot be encoded.
   */
  sendData?(stream: number, offset: number, payload: Uint8Array): void;
  /**
   * Optional: sends an ack frame for `stream` up to `offset`, as if send() got it encoded, written
   * straight into the transport's own buffer (no frame object or array per ack: one rides every
   * keystroke and every echo). Throws E_PROTOCOL, sending nothing, when the values cannot be
   * encoded.
   */
  sendAck?(stream: number, offset: number): void;
  /** Bytes handed to send() that the transport has not yet passed to the network. */
  readonly bufferedAmount: number;
  /**
   * Optional: writes now what a quiet link's first frames wait to write at the end of the
   * microtask (the byte-stream transport), so a keystroke or its echo leaves before the rest of
   * the event loop's callback (a Node stream's own bookkeeping after 'data') has run.
   */
  flush?(): void;
  /**
   * Optional, with flush: the caller is about to send frames and calls flush() before it returns,
   * so a quiet link's first frame need not be scheduled for the end of the microtask (a promise
   * reaction per keystroke and per echo, run for nothing once flush() has written it).
   */
  willFlush?(): void;
  onFrame(listener: (frame: Uint8Array) => void): Disposable;
  /**
   * Optional: a transport on a byte stream may hand on a big data frame's payload in pieces as
   * they arrive (no copy into a buffer of its own), to this one listener, in order with the
   * frames; each piece is as if a data frame for `stream` at `offset` had come. Without a
   * listener every frame comes whole to onFrame.
   */
  onDataPart?(listener: DataPartListener): Disposable;
  /**
   * Optional: a transport that reads frames out of a byte stream may hand on an ack frame that
   * arrived whole as its two numbers, to this one listener, in order with the frames (no frame
   * object or DataView per ack: one rides every keystroke and every echo). Without a listener
   * acks come to onFrame.
   */
  onAck?(listener: AckListener): Disposable;
  /**
   * Optional: the transport has a priority lane for data frames of at most this many bytes (head
   * included). The mux's one use of it (DataScheduler.sendSmall): while bufferedAmount is at or
   * above the mux's high water, a stream whose whole queue fits one such frame (a keystroke, its
   * echo, a small request) is still handed over, as one frame, instead of waiting for onDrain.
   * Undefined: no lane; then such frames wait for the drain like bulk.
   *
   * A transport that declares it promises, for every frame it is handed:
   * - Such a small data frame leaves ahead of the bigger data frames of other streams that the
   *   transport still holds, so what bufferedAmount counts does not delay it (the byte-stream
   *   link's urgent lane; the WebRTC transport while pacing).
   * - Each stream's frames (data and close) leave in the order they were handed over: a small
   *   frame never passes an earlier frame of its own stream.
   * - Control frames keep their order among themselves.
   * - Frames move only whole: never between a frame's head and its payload, nor between the
   *   chunks of a split frame. The bytes on the wire are those of some order of whole frames, so
   *   the peer needs nothing new (the lane is a sender's choice, not a protocol feature).
   * - Frames above this size, and everything when nothing big is held, keep the order they were
   *   handed over in.
   */
  readonly priorityFrameBytes?: number;
  /** Fires when bufferedAmount has fallen after being high; lets senders refill. */
  onDrain(listener: () => void): Disposable;
  /** Fires once, when the transport is gone for whatever reason. */
  onClose(listener: (reason: CloseReason) => void): Disposable;
  close(reason?: CloseReason): void;
  readonly closed: boolean;
  /**
   * Optional: a transport whose own messages can each carry several frames, once the peer has said
   * it splits them. The handshake names `feature` in its hello (device) or challenge (agent) when
   * the transport has this, and calls enable() once the peer named it too; a peer of an older
   * version names nothing (the field is unknown to it, so dropped) and gets one frame a message.
   */
  joinedFrames?: TransportFeature;
  /** Optional: further features of the transport, offered and turned on as joinedFrames is. */
  moreFeatures?: readonly TransportFeature[];
}

/** Something a transport does once the peer said in the handshake that it does it too. */
export interface TransportFeature {
  readonly feature: string;
  enable(): void;
  readonly enabled: boolean;
}

/** What an adapter keeps for the listening half of its FrameTransport (see transportListeners). */
export interface TransportEmitters {
  frames: Emitter<Uint8Array>;
  drains: Emitter<void>;
  closes: Emitter<CloseReason>;
  /** Frames that came while nobody listened, oldest first. */
  unclaimed: Uint8Array[];
}

/** Frames kept while nobody listens (between handshake and the link owner subscribing). */
export const MAX_UNCLAIMED_FRAMES = 4096;
export const TOO_MANY_UNCLAIMED = 'peer sent too many frames before the link was ready';

/** Hands `frame` to the frame listener, or keeps it for the first one; false when too many wait already. */
export function deliverFrame(emitters: TransportEmitters, frame: Uint8Array): boolean {
  if (emitters.frames.hasListeners) emitters.frames.fire(frame);
  else if (emitters.unclaimed.length < MAX_UNCLAIMED_FRAMES) emitters.unclaimed.push(frame);
  else return false;
  return true;
}

/** What a close listener added after the close hears, unless the adapter knows better. */
export const LINK_CLOSED: CloseReason = { code: 'closed', message: 'link closed' };

/**
 * onFrame, onDrain and onClose of a FrameTransport, alike in every adapter: the first frame
 * listener gets what arrived while nobody listened, in order, before anything newer; a close
 * listener added after the close hears it on the next microtask.
 */
export function transportListeners(
  emitters: TransportEmitters,
  closed: () => boolean,
  lateReason: () => CloseReason = () => LINK_CLOSED,
): Pick<FrameTransport, 'onFrame' | 'onDrain' | 'onClose'> {
  const { frames, drains, closes, unclaimed } = emitters;
  return {
    onFrame(listener) {
      const subscription = frames.event(listener);
      while (unclaimed.length > 0 && !closed()) listener(unclaimed.shift()!);
      return subscription;
    },
    onDrain: (listener) => drains.event(listener),
    onClose(listener) {
      if (closed()) {
        const reason = lateReason();
        queueMicrotask(() => listener(reason));
        return toDisposable(() => undefined);
      }
      return closes.event(listener);
    },
  };
}
