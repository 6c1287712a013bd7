import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HangarError } from '@hangar/shared';
import { MAX_SPLICE_DIALS, SpliceDialer } from '../../src/relay/splice-dial.js';

/**
 * The agent's splice dials against a "relay" on loopback that takes each connection and never
 * answers its upgrade (a relay, or a device through it, asking for link after link).
 */

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function silentRelay() {
  const connections: Socket[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((socket) => {
    connections.push(socket);
    waiters.splice(0).forEach((wake) => wake());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    /** Resolves once `count` connections have arrived. */
    async reached(count: number) {
      while (connections.length < count) await new Promise<void>((wake) => waiters.push(wake));
    },
  };
}

describe('relayed links being dialed', () => {
  it(`at most ${MAX_SPLICE_DIALS} at once: the next is refused at once, and one that ends makes room`, async () => {
    const relay = await silentRelay();
    const dialer = new SpliceDialer(MAX_SPLICE_DIALS, 60_000);
    const dials = Array.from({ length: MAX_SPLICE_DIALS }, (_, i) =>
      dialer.dial(relay.url, `splice_${i}`).catch((error: unknown) => error),
    );
    await relay.reached(MAX_SPLICE_DIALS);
    // Refused before it connects (without the cap it would reach the relay as a ninth connection).
    const over = dialer.dial(relay.url, 'splice_over').catch((error: unknown) => error);
    const refused = await Promise.race([over, relay.reached(MAX_SPLICE_DIALS + 1).then(() => 'dialed')]);
    expect(refused).toBeInstanceOf(HangarError);
    expect(refused).toMatchObject({ code: 'E_RATE_LIMITED' });
    expect(relay.connections).toHaveLength(MAX_SPLICE_DIALS);
    // The relay drops one: that dial fails, and the next is dialed.
    relay.connections[0]!.destroy();
    expect(await dials[0]).toBeInstanceOf(Error);
    const next = dialer.dial(relay.url, 'splice_next').catch((error: unknown) => error);
    await relay.reached(MAX_SPLICE_DIALS + 1);
    for (const socket of relay.connections) socket.destroy();
    await Promise.all([...dials, next, over]);
  });
});
