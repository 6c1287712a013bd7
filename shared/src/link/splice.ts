import type { CloseReason } from '../protocol/control.js';
import { PREVIEW_EOF } from '../protocol/previews.js';
import type { LinkStream } from './stream.js';

/**
 * The part of a byte socket (Node's net.Socket) that splicing needs. Structural, so this file
 * stays platform-neutral; the agent and the app core both hand in real sockets.
 */
export interface ByteSocket {
  write(data: Uint8Array): boolean;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'drain' | 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * Joins a TCP connection and a link stream, both ways, with backpressure both ways: the socket
 * is paused while the stream's window is full, and the peer gets credit only for bytes the
 * socket has taken (autoAck off), so neither end holds more than a window plus the socket's
 * buffer. The stream carries no half-close: the first side to end ends both (`eof`), which is
 * what HTTP and WebSocket from browsers need. Resolves with why it ended.
 */
export function spliceSocket(socket: ByteSocket, stream: LinkStream): Promise<CloseReason> {
  stream.autoAck = false;
  let ended = false;
  return new Promise<CloseReason>((resolve) => {
    const finish = (reason: CloseReason) => {
      if (ended) return;
      ended = true;
      resolve(reason);
    };

    socket.on('data', (chunk) => {
      // Node hands each read its own buffer: the stream may keep it without a copy.
      if (!stream.write(chunk, { transfer: true })) socket.pause();
    });
    stream.onDrain(() => socket.resume());
    socket.on('end', () => stream.close({ code: PREVIEW_EOF, message: 'connection ended' }));
    socket.on('error', (error) =>
      stream.close({ code: 'E_UNAVAILABLE', message: `connection failed: ${error.message}` }, { flush: false }),
    );
    socket.on('close', () => {
      stream.close({ code: PREVIEW_EOF, message: 'connection closed' });
      finish({ code: PREVIEW_EOF, message: 'connection closed' });
    });

    stream.onData((data, offset) => {
      const consumed = offset + data.length;
      if (socket.write(data)) stream.ack(consumed);
    });
    socket.on('drain', () => {
      if (!stream.closed) stream.ack(stream.recvOffset);
    });
    stream.onClose((reason) => {
      // Bytes that arrived before the close are in the socket's buffer; end() sends them first.
      if (reason.code === PREVIEW_EOF) socket.end();
      else socket.destroy();
      finish(reason);
    });
  });
}
