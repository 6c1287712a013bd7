import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { PendingLimits } from '../../src/link/pending-connections.js';
import { useCleanups } from '../../../test/support/cleanups.js';
import { startLinkServer } from './link-server.js';

const cleanups = useCleanups();

async function start(pendingLimits: Partial<PendingLimits>): Promise<number> {
  const server = await startLinkServer(cleanups, { onLink: () => undefined, pendingLimits });
  return server.address().port;
}

/** An idle TCP connection from `source`, once the agent has accepted it (it answers nothing, so wait a beat). */
async function idle(port: number, source: string): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress: source });
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return socket;
}

/** Resolves when the agent has closed the connection; fails after `timeoutMs`. */
const closed = (socket: Socket, timeoutMs = 5000) =>
  new Promise<void>((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });

describe('connections that have not authenticated', () => {
  it('past the cap for a source, the oldest of that source makes way, and nobody else', async () => {
    const port = await start({ total: 10, perSource: 2 });
    const first = await idle(port, '127.0.0.2');
    const second = await idle(port, '127.0.0.2');
    const neighbour = await idle(port, '127.0.0.3');
    const third = await idle(port, '127.0.0.2');
    await closed(first);
    const fourth = await idle(port, '127.0.0.2');
    await closed(second);
    expect([neighbour, third, fourth].map((socket) => socket.destroyed)).toEqual([false, false, false]);
  });

  it('past the total, the oldest of the source holding the most makes way', async () => {
    const port = await start({ total: 4, perSource: 3 });
    const busy = [await idle(port, '127.0.0.2'), await idle(port, '127.0.0.2'), await idle(port, '127.0.0.2')];
    const quiet = await idle(port, '127.0.0.3');
    const newcomer = await idle(port, '127.0.0.4');
    await closed(busy[0]!);
    expect([busy[1], busy[2], quiet, newcomer].map((socket) => socket!.destroyed)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('are dropped at the deadline', async () => {
    const port = await start({ deadlineMs: 300 });
    const socket = await idle(port, '127.0.0.2');
    const started = Date.now();
    await closed(socket);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
