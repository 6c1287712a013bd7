import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LINK_TLS_CIPHERS } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { handshake, newDeviceKey as rawDeviceKey, openRawLink } from '../../../../test/support/raw-link.js';
import { Cleanup, eventually, newDeviceKey, startTestAgent } from './fixture.js';
import { startTcpProxy } from './proxies.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

// RFC 8446 §B.4.
const AES_128_GCM = 0x1301;
const AES_256_GCM = 0x1302;
const CHACHA20_POLY1305 = 0x1303;

/**
 * The cipher suites of a ClientHello (in the client's order) or the one of a ServerHello, read
 * from the first TLS record a side sent (RFC 8446 §4.1.2, §4.1.3; both in one record here).
 */
function helloSuites(record: Buffer): { type: number; suites: number[] } {
  expect(record[0]).toBe(0x16); // handshake record
  const type = record[5]!;
  // Record head 5, handshake head 4, legacy_version 2, random 32, then the session id.
  let at = 5 + 4 + 2 + 32;
  at += 1 + record[at]!;
  if (type === 2) return { type, suites: [record.readUInt16BE(at)] };
  const length = record.readUInt16BE(at);
  const suites: number[] = [];
  for (let i = 0; i < length; i += 2) suites.push(record.readUInt16BE(at + 2 + i));
  return { type, suites };
}

describe("the link's TLS cipher suite", () => {
  it('is AES-128-GCM between a core and an agent, as the wire shows, the other TLS 1.3 suites still offered', async () => {
    const agent = await startTestAgent(cleanup);
    const first: Partial<Record<'to-server' | 'to-client', Buffer>> = {};
    const proxy = await startTcpProxy(cleanup, agent.address, (chunk, direction, index) => {
      if (index === 0) first[direction] = chunk;
      return chunk;
    });
    const linked = await connectToHost({
      address: proxy.address,
      deviceKey: newDeviceKey(),
      deviceName: 'laptop',
      pairingCode: agent.issueCode(),
    });
    cleanup.add(() => linked.transport.close());
    await eventually(() => agent.links.length === 1);
    const offered = helloSuites(first['to-server']!);
    expect(offered.type).toBe(1);
    expect(offered.suites.filter((suite) => suite >> 8 === 0x13)).toEqual([
      AES_128_GCM,
      AES_256_GCM,
      CHACHA20_POLY1305,
    ]);
    expect(helloSuites(first['to-client']!)).toEqual({ type: 2, suites: [AES_128_GCM] });
  });

  it('is AES-128-GCM on a relay-spliced link too (the agent serves a socket it was handed, the core dials over one)', async () => {
    const agent = await startTestAgent(cleanup);
    // The relay's part: a byte pipe. The agent's end goes to acceptSpliced, as a splice's does.
    const ends = new Set<Socket>();
    const relay = createServer((socket) => {
      ends.add(socket);
      agent.server.acceptSpliced(socket);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanup.add(
      () => new Promise<void>((resolve) => (ends.forEach((end) => end.destroy()), relay.close(() => resolve()))),
    );
    const first: Partial<Record<'to-server' | 'to-client', Buffer>> = {};
    const proxy = await startTcpProxy(
      cleanup,
      `127.0.0.1:${(relay.address() as AddressInfo).port}`,
      (chunk, direction, index) => {
        if (index === 0) first[direction] = chunk;
        return chunk;
      },
    );
    const [host, port] = proxy.address.split(':') as [string, string];
    const linked = await connectToHost({
      address: 'relay:mini',
      carrier: () =>
        new Promise((resolve, reject) => {
          const socket = connect(Number(port), host, () => resolve(socket));
          socket.once('error', reject);
        }),
      deviceKey: newDeviceKey(),
      deviceName: 'laptop',
      pairingCode: agent.issueCode(),
    });
    cleanup.add(() => linked.transport.close());
    await eventually(() => agent.links.length === 1);
    expect(helloSuites(first['to-server']!).suites[0]).toBe(AES_128_GCM);
    expect(helloSuites(first['to-client']!)).toEqual({ type: 2, suites: [AES_128_GCM] });
    // Not a TCP connection of ours to the host: no lanes beside it (lane/PROTOCOL.md).
    expect(linked.tcp).toBeUndefined();
  });

  it("is the agent's choice: a peer offering TLS_AES_256_GCM_SHA384 first, as Node does, gets AES-128-GCM", async () => {
    const agent = await startTestAgent(cleanup);
    const link = await openRawLink(agent.address);
    cleanup.add(() => link.destroy());
    expect(link.socket.getCipher().standardName).toBe('TLS_AES_128_GCM_SHA256');
    await handshake(link, rawDeviceKey(), { code: agent.issueCode() });
    await eventually(() => agent.links.length === 1);
  });

  for (const only of ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    it(`still links a peer that offers only ${only}`, async () => {
      expect(LINK_TLS_CIPHERS.split(':')).toContain(only);
      const agent = await startTestAgent(cleanup);
      const link = await openRawLink(agent.address, '127.0.0.1', 10_000, only);
      cleanup.add(() => link.destroy());
      expect(link.socket.getCipher().standardName).toBe(only);
      await handshake(link, rawDeviceKey(), { code: agent.issueCode() });
      await eventually(() => agent.links.length === 1);
    });
  }
});
