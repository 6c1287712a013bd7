import { wrapFramePort, type FrameTransport } from '@hangar/shared';

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

/** A FrameTransport over the core's end of a window's MessagePort (shared's wrapFramePort). */
export function portTransport(port: PortLike): FrameTransport {
  return wrapFramePort(
    {
      postMessage: (frame) => port.postMessage(frame),
      start: () => port.start(),
      close: () => port.close(),
      onMessage: (listener) => port.on('message', (event) => listener(event.data)),
      onClose: (listener) => port.on('close', listener),
    },
    'the window closed its port',
  );
}
