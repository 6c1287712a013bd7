import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import selfsigned from 'selfsigned';
import WebSocket, { WebSocketServer } from 'ws';
import type { Cleanup } from './fixture.js';

export type Direction = 'to-server' | 'to-client';

/**
 * A TCP relay that records every byte and may rewrite chunks: what an attacker on the network
 * path (or a packet capture) sees and can do without the TLS keys.
 */
export async function startTcpProxy(
  cleanup: Cleanup,
  target: string,
  rewrite: (chunk: Buffer, direction: Direction, index: number) => Buffer = (chunk) => chunk,
): Promise<{ address: string; captured: Buffer[] }> {
  const [host, port] = target.split(':') as [string, string];
  const captured: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    sockets.add(client).add(upstream);
    const counts = { 'to-server': 0, 'to-client': 0 };
    const pipe = (from: Socket, to: Socket, direction: Direction) => {
      from.on('data', (chunk: Buffer) => {
        captured.push(Buffer.from(chunk));
        to.write(rewrite(Buffer.from(chunk), direction, counts[direction]++));
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream, 'to-server');
    pipe(upstream, client, 'to-client');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        sockets.forEach((socket) => socket.destroy());
        server.close(() => resolve());
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, captured };
}

/**
 * A man in the middle that terminates TLS with its own certificate and relays WebSocket
 * messages to the real agent, optionally rewriting them.
 */
export async function startTlsMitm(
  cleanup: Cleanup,
  target: string,
  rewrite: (message: Buffer, direction: Direction) => Buffer = (message) => message,
): Promise<{ address: string }> {
  const made = await selfsigned.generate([{ name: 'commonName', value: 'mitm' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
  });
  const server = createHttpsServer({ cert: made.cert, key: made.private, minVersion: 'TLSv1.3' });
  const wss = new WebSocketServer({ server, path: '/link' });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (victim) => {
    const upstream = new WebSocket(`wss://${target}/link`, { rejectUnauthorized: false });
    sockets.add(victim).add(upstream);
    const pending: Buffer[] = [];
    victim.on('message', (data: Buffer) => {
      const out = rewrite(data, 'to-server');
      if (upstream.readyState === WebSocket.OPEN) upstream.send(out);
      else pending.push(out);
    });
    upstream.on('open', () => pending.splice(0).forEach((message) => upstream.send(message)));
    upstream.on('message', (data: Buffer) => victim.send(rewrite(data, 'to-client')));
    upstream.on('close', () => victim.close());
    victim.on('close', () => upstream.close());
    upstream.on('error', () => victim.terminate());
    victim.on('error', () => upstream.terminate());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(async () => {
    sockets.forEach((socket) => socket.terminate());
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}
