import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeBase64url, type Mux } from '@hangar/shared';
import { LaneUnavailable, openLane, type LaneConnection } from '../../src/link/lanes.js';
import { useCleanups } from '../../../../test/support/cleanups.js';

const cleanups = useCleanups();

/** A port nothing listens on (one that was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A host connection as openLane sees it, standing in for HostConnection: one live link (a mux
 * object), grants that count how often they were asked for, and the lane port it names.
 */
function connection(port: number): LaneConnection & { grants: number } {
  const mux = { closed: false } as Mux;
  const stub = {
    grants: 0,
    link: async () => mux,
    call: (async () => {
      stub.grants++;
      return { grant_id: encodeBase64url(randomBytes(16)), secret: encodeBase64url(randomBytes(32)) };
    }) as LaneConnection['call'],
    laneTarget: () => ({ host: '127.0.0.1', port }),
  };
  return stub;
}

describe('openLane', () => {
  it('a lane port that refuses is remembered for the link: later lanes fall back at once, without dialing', async () => {
    const port = await closedPort();
    const host = connection(port);
    await expect(openLane(host, { purpose: 'preview', port: 5173 })).rejects.toThrow(LaneUnavailable);
    // Now something listens there: a lane of this link does not try it again.
    let dialed = 0;
    const server: Server = createServer((socket) => {
      dialed++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await expect(openLane(host, { purpose: 'preview', port: 5173 })).rejects.toThrow(/lane port not reachable/);
    expect(dialed).toBe(0);
    expect(host.grants).toBe(1);
    // A new link tries again.
    const next = connection(port);
    await expect(openLane(next, { purpose: 'preview', port: 5173 })).rejects.toThrow(LaneUnavailable);
    expect(dialed).toBe(1);
  });
});
