import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { wrapWebSocket, type FrameTransport } from '@hangar/shared';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A ws pair on loopback; the client side wrapped with the batching Node callers use. */
async function pair(): Promise<{ transport: FrameTransport; socket: Socket; peer: WebSocket }> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const http = createServer();
  const peerReady = new Promise<WebSocket>((resolve) => {
    http.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, resolve));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const peer = await peerReady;
  const socket = (ws as unknown as { _socket: Socket })._socket;
  const transport = wrapWebSocket(ws, { socket, later: setImmediate });
  cleanups.push(() => {
    ws.terminate();
    peer.terminate();
    wss.close();
    http.close();
  });
  return { transport, socket, peer };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('WebSocket transport write batching', () => {
  it('writes the first frame after a quiet spell at once and batches the rest of the turn', async () => {
    const { transport, socket, peer } = await pair();
    const received: number[] = [];
    peer.on('message', (data: Buffer) => received.push(data[0]!));

    const before = socket.bytesWritten;
    transport.send(Uint8Array.of(1));
    // Handed to the kernel before send() returned: nothing of it waits in Node.
    expect(socket.writableLength).toBe(0);
    expect(socket.bytesWritten).toBeGreaterThan(before);
    transport.send(Uint8Array.of(2));
    transport.send(Uint8Array.of(3));
    // The frames after it in the same turn wait for the turn's end, to leave in one write.
    expect(socket.writableCorked).toBe(1);
    expect(socket.writableLength).toBeGreaterThan(0);
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
    expect(socket.writableLength).toBe(0);

    // Quiet again (everything written): the next frame goes at once too.
    await nextTurn();
    transport.send(Uint8Array.of(4));
    expect(socket.writableLength).toBe(0);

    while (received.length < 4) await nextTurn();
    expect(received).toEqual([1, 2, 3, 4]);
  });

  it('batches every frame while earlier ones are still waiting to be written (a flood)', async () => {
    const { transport, socket, peer } = await pair();
    // The peer stops reading: the kernel's buffers fill and Node keeps the rest.
    (peer as unknown as { _socket: Socket })._socket.pause();
    const chunk = new Uint8Array(1024 * 1024);
    while (transport.bufferedAmount === 0 || socket.writableLength === 0) {
      for (let i = 0; i < 8; i++) transport.send(chunk);
      await nextTurn();
    }
    expect(transport.bufferedAmount).toBeGreaterThan(0);
    transport.send(Uint8Array.of(1));
    expect(socket.writableCorked).toBe(1);
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
  });
});
