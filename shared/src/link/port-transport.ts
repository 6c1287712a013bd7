import { Emitter, toDisposable } from '../disposable.js';
import type { CloseReason } from '../protocol/control.js';
import type { FrameTransport } from './transport.js';

/**
 * The little a transport needs of a message port. Electron's MessagePortMain (`on('message')`)
 * and the DOM's MessagePort (`addEventListener`) differ only in how listeners are added, so each
 * side adapts its own port in a few lines and shares everything else.
 */
export interface FramePort {
  postMessage(message: Uint8Array): void;
  start(): void;
  close(): void;
  onMessage(listener: (data: unknown) => void): void;
  onClose(listener: () => void): void;
}

/**
 * A FrameTransport over a message port: one message is one frame, a Uint8Array (an ArrayBuffer
 * is accepted too). postMessage has no backpressure signal, so bufferedAmount is always 0; the
 * Mux's per-stream credit windows bound what is in flight. Anything else received is a protocol
 * error: the transport closes with a reason rather than silently dropping it.
 */
export function wrapFramePort(port: FramePort, closedByPeer = 'the other side closed its port'): FrameTransport {
  const frames = new Emitter<Uint8Array>();
  const closes = new Emitter<CloseReason>();
  let closed = false;
  let closeReason: CloseReason | undefined;
  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    closeReason = reason;
    closes.fire(reason);
    frames.dispose();
    closes.dispose();
  };
  port.onMessage((data) => {
    if (closed) return;
    if (data instanceof Uint8Array) frames.fire(data);
    else if (data instanceof ArrayBuffer) frames.fire(new Uint8Array(data));
    else transport.close({ code: 'E_PROTOCOL', message: 'each port message must be one frame as a Uint8Array' });
  });
  port.onClose(() => finish({ code: 'closed', message: closedByPeer }));
  const transport: FrameTransport = {
    send(frame) {
      if (!closed) port.postMessage(frame);
    },
    bufferedAmount: 0,
    onFrame: (listener) => frames.event(listener),
    // Never high, so never drained.
    onDrain: () => toDisposable(() => undefined),
    onClose(listener) {
      if (closed) {
        const reason = closeReason!;
        queueMicrotask(() => listener(reason));
        return toDisposable(() => undefined);
      }
      return closes.event(listener);
    },
    close(reason = { code: 'closed', message: 'closed by this side' }) {
      if (closed) return;
      port.close();
      finish(reason);
    },
    get closed() {
      return closed;
    },
  };
  port.start();
  return transport;
}
