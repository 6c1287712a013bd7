import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeFrame, RAW_LINK_ALPN } from '@hangar/shared';
import { useCleanups } from '../../../test/support/cleanups.js';
import { startLinkServer } from './link-server.js';

const cleanups = useCleanups();

async function start(handshakeTimeoutMs?: number): Promise<string> {
  const server = await startLinkServer(cleanups, {
    onLink: () => {
      throw new Error('no link expected');
    },
    ...(handshakeTimeoutMs ? { handshakeTimeoutMs } : {}),
  });
  return `127.0.0.1:${server.address().port}`;
}

function openRaw(address: string): Promise<WebSocket> {
  const ws = new WebSocket(`wss://${address}/link`, { rejectUnauthorized: false });
  cleanups.push(() => ws.terminate());
  ws.on('error', () => undefined);
  return new Promise((resolve) => ws.on('open', () => resolve(ws)));
}

const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));

describe('link server', () => {
  it('refuses garbage with E_PROTOCOL and closes the socket', async () => {
    const ws = await openRaw(await start());
    const answer = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    const done = closed(ws);
    ws.send(encodeFrame({ type: 'control', json: '{"kind":"link.hello"}' }));
    const refused = JSON.parse((await answer).subarray(1).toString('utf8'));
    expect(refused).toMatchObject({ kind: 'link.refused', error: { code: 'E_PROTOCOL' } });
    await done;
  });

  it('drops a peer that does not finish the handshake in time', async () => {
    const ws = await openRaw(await start(200));
    const started = Date.now();
    await closed(ws);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('drops an oversized frame without crashing', async () => {
    const address = await start();
    const ws = await openRaw(address);
    const done = closed(ws);
    ws.send(new Uint8Array(1024 * 1024 + 10));
    expect(await done).toBe(1009);
    const next = await openRaw(address);
    expect(next.readyState).toBe(WebSocket.OPEN);
  });

  it('closes a raw link whose peer sends more than it may before authenticating', async () => {
    const address = await start(60_000);
    const [host, port] = address.split(':');
    const socket = connect({
      host: host!,
      port: Number(port),
      rejectUnauthorized: false,
      ALPNProtocols: [RAW_LINK_ALPN],
    });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => undefined);
    // Sent as the handshake ends: a 1 MiB frame's length, then 64 KiB of it (never finished).
    const length = Buffer.alloc(4);
    length.writeUInt32BE(1024 * 1024);
    socket.write(length);
    socket.write(Buffer.alloc(64 * 1024, 0x41));
    socket.resume();
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
    expect(socket.alpnProtocol).toBe(RAW_LINK_ALPN);
    // Long before the handshake's deadline (60 s).
    await new Promise((resolve) => socket.once('close', resolve));
  });

  it('speaks TLS 1.3 only', async () => {
    const address = await start();
    const [host, port] = address.split(':');
    const error = await new Promise<Error>((resolve) => {
      const socket = connect({ host: host!, port: Number(port), maxVersion: 'TLSv1.2', rejectUnauthorized: false });
      socket.on('error', resolve);
      socket.on('secureConnect', () => resolve(new Error('connected over TLS 1.2')));
    });
    expect(error.message).not.toBe('connected over TLS 1.2');
  });
});
