import { wrapWebSocket } from '@hangar/shared';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { SMALL_FRAME_BYTES, smallFramesInOneWrite } from '../../src/web/small-frames.js';

/** A loopback `ws` server (as the web server's) and a client; the server's socket writes are counted. */
async function pair(options: { perMessageDeflate?: boolean } = {}) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: options.perMessageDeflate ?? false });
  const http: Server = createServer();
  const accepted = new Promise<{ ws: WebSocket; socket: Duplex; writes: number[] }>((resolve) =>
    http.on('upgrade', (request, socket: Duplex, head: Buffer) => {
      const writes: number[] = [];
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((chunk: Uint8Array, ...rest: unknown[]) => {
        writes.push(chunk.length);
        return write(chunk, ...rest);
      }) as typeof socket.write;
      wss.handleUpgrade(request, socket, head, (ws) => resolve({ ws, socket, writes }));
    }),
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/`, {
    perMessageDeflate: options.perMessageDeflate ?? false,
  });
  const received: Buffer[] = [];
  client.on('message', (data: Buffer) => received.push(data));
  await new Promise((resolve) => client.once('open', resolve));
  const server = await accepted;
  const close = async () => {
    client.terminate();
    server.ws.terminate();
    wss.close();
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  };
  return { ...server, client, received, close };
}

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

describe('smallFramesInOneWrite', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('writes each small message as one buffer, larger ones through ws, all intact and in order', async () => {
    const p = await pair();
    close = p.close;
    const transport = wrapWebSocket(smallFramesInOneWrite(p.ws, p.socket));
    const sizes = [1, 26, 125, 126, SMALL_FRAME_BYTES, SMALL_FRAME_BYTES + 1, 40_000, 3, 65_535, 70_000, 2];
    const sent = sizes.map((size, i) => bytes(size, i));
    p.writes.length = 0;
    for (const frame of sent) transport.send(frame);
    await expect.poll(() => p.received.length).toBe(sent.length);
    expect(p.received.map((data) => [...data])).toEqual(sent.map((data) => [...data]));
    // Small ones: one write of header + payload. Large ones: ws's header and payload (two writes).
    const small = sizes.filter((size) => size <= SMALL_FRAME_BYTES);
    for (const size of small) expect(p.writes).toContain(size + (size < 126 ? 2 : 4));
    expect(p.writes).toHaveLength(small.length + 2 * (sizes.length - small.length));
    // The transport counted every write as done (its drain accounting rides on the callbacks).
    await expect.poll(() => transport.bufferedAmount).toBe(0);
  });

  it('reads what the page sends and closes as ws does', async () => {
    const p = await pair();
    close = p.close;
    const transport = wrapWebSocket(smallFramesInOneWrite(p.ws, p.socket));
    const frames: number[][] = [];
    transport.onFrame((frame) => frames.push([...frame]));
    p.client.send(bytes(5, 1));
    await expect.poll(() => frames).toEqual([[...bytes(5, 1)]]);
    const closed = new Promise<number>((resolve) => p.client.once('close', resolve));
    transport.close({ code: 'closed', message: 'bye' });
    expect(await closed).toBe(1000);
  });

  it('leaves a socket with permessage-deflate to ws', async () => {
    const p = await pair({ perMessageDeflate: true });
    close = p.close;
    expect(p.ws.extensions).not.toBe('');
    expect(smallFramesInOneWrite(p.ws, p.socket)).toBe(p.ws);
  });
});
