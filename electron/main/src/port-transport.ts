import { Emitter, type CloseReason, type FrameTransport } from '@hangar/shared';

/**
 * The part of Electron's MessagePortMain the transport uses (so tests can pass Node's own
 * MessagePort, wrapped). One message is one frame, a Uint8Array, structured-cloned.
 */
export interface PortLike {
  postMessage(message: unknown): void;
  start(): void;
  close(): void;
  on(event: 'message', listener: (event: { data: unknown }) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/**
 * A FrameTransport over a MessagePort. postMessage has no backpressure signal, so
 * bufferedAmount is always 0; the Mux's per-stream credit windows bound what is in flight.
 */
export function portTransport(port: PortLike): FrameTransport {
  const frames = new Emitter<Uint8Array>();
  const closes = new Emitter<CloseReason>();
  let closed = false;
  const finish = (reason: CloseReason) => {
    if (closed) return;
    closed = true;
    closes.fire(reason);
    frames.dispose();
    closes.dispose();
  };
  port.on('message', (event) => {
    if (closed) return;
    if (!(event.data instanceof Uint8Array)) {
      transport.close({ code: 'E_PROTOCOL', message: 'each port message must be one frame as a Uint8Array' });
      return;
    }
    frames.fire(event.data);
  });
  port.on('close', () => finish({ code: 'closed', message: 'the window closed its port' }));
  const transport: FrameTransport = {
    send(frame) {
      if (!closed) port.postMessage(frame);
    },
    bufferedAmount: 0,
    onFrame: (listener) => frames.event(listener),
    onDrain: () => ({ dispose: () => undefined }),
    onClose: (listener) => closes.event(listener),
    close(reason = { code: 'closed', message: 'closed by the core' }) {
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
