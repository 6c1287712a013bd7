import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketFrameTransport } from '../../src/door/socket-transport.js';

/** Both ends of a loopback connection: the transport's socket and the peer that reads it. */
async function socketPair(): Promise<{ server: Server; ours: Socket; peer: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const ours = connect(address.port, '127.0.0.1');
  await once(ours, 'connect');
  const [peer] = await accepted;
  return { server, ours, peer };
}

const frames = (peer: Socket, count: number) =>
  new Promise<number[][]>((resolve) => {
    const received: number[][] = [];
    const transport = new SocketFrameTransport(peer);
    transport.onFrame((frame) => {
      received.push([...frame]);
      if (received.length === count) resolve(received);
    });
  });

describe('the door socket transport (issue 17: the first frame after a quiet spell)', () => {
  let pair: Awaited<ReturnType<typeof socketPair>> | undefined;
  afterEach(() => {
    pair?.ours.destroy();
    pair?.peer.destroy();
    pair?.server.close();
    pair = undefined;
  });

  it('writes a keystroke and what goes with it when the code that sent them returns, not after the turn', async () => {
    pair = await socketPair();
    const transport = new SocketFrameTransport(pair.ours);
    const received = frames(pair.peer, 2);
    transport.send(new Uint8Array([1]));
    transport.send(new Uint8Array([2, 2]));
    // Held while the sending code runs, so that the two leave in one write…
    expect(transport.bufferedAmount).toBeGreaterThan(0);
    await Promise.resolve();
    // …and handed to the kernel right after it, before the event loop's next phase.
    expect(transport.bufferedAmount).toBe(0);
    expect(await received).toEqual([[1], [2, 2]]);

    // Quiet again: the next one goes as soon, too.
    const next = frames(pair.peer, 1);
    transport.send(new Uint8Array([3, 3, 3]));
    await Promise.resolve();
    expect(transport.bufferedAmount).toBe(0);
    expect(await next).toEqual([[3, 3, 3]]);
  });
});
