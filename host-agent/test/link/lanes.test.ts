import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LANE_PREFACE, loadNativeLanes } from '@hangar/lane';
import { LaneAcceptor } from '../../src/link/lanes.js';
import type { PendingLimits } from '../../src/link/pending-connections.js';
import { useCleanups } from '../../../test/support/cleanups.js';
import { startLinkServer } from './link-server.js';

/**
 * The link port's front: a connection that starts "HGLANE/1" goes to the lane acceptor, counted
 * among the connections that have not authenticated from accept on, like a link's.
 */
const cleanups = useCleanups();

async function start(pendingLimits: Partial<PendingLimits>, helloTimeoutMs = 60_000): Promise<number> {
  // The port looks for lanes only with the native relay there (it peeks at the first bytes with it).
  const lanes = new LaneAcceptor(pino({ level: 'silent' }), loadNativeLanes(), helloTimeoutMs);
  cleanups.push(() => lanes.dispose());
  const server = await startLinkServer(cleanups, { onLink: () => undefined, pendingLimits, lanes });
  return server.address().port;
}

/** A connection from `source` that sends `bytes` and then nothing, once the agent has accepted it. */
async function sending(port: number, source: string, bytes: Uint8Array): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress: source });
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
  return socket;
}

/** A TLS handshake with the link port (a link's first step), then gone. */
async function tlsHandshake(port: number): Promise<void> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.destroy();
}

/** Resolves with what the agent sent before it closed the connection; fails after 5 s. */
const closed = (socket: Socket) =>
  new Promise<Buffer>((resolve, reject) => {
    const got: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => got.push(chunk));
    if (socket.destroyed) return resolve(Buffer.concat(got));
    const timer = setTimeout(() => reject(new Error('connection still open after 5 s')), 5000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
  });

describe('lanes at the link port', () => {
  it('a preface and then nothing waits for its HELLO, and is dropped at the deadline with no answer', async () => {
    const port = await start({}, 300);
    const socket = await sending(port, '127.0.0.2', LANE_PREFACE);
    // A whole TLS handshake on another connection: the agent has long read the preface by then
    // (had it gone to TLS, it would have been refused already).
    await tlsHandshake(port);
    expect(socket.destroyed).toBe(false);
    expect((await closed(socket)).length).toBe(0);
  });

  it('lane prefaces count against the per-source cap of connections not yet authenticated', async () => {
    const port = await start({ total: 10, perSource: 2 });
    const first = await sending(port, '127.0.0.2', LANE_PREFACE);
    const second = await sending(port, '127.0.0.2', LANE_PREFACE);
    const neighbour = await sending(port, '127.0.0.3', LANE_PREFACE);
    const third = await sending(port, '127.0.0.2', LANE_PREFACE);
    await closed(first);
    await tlsHandshake(port);
    expect([second, neighbour, third].map((socket) => socket.destroyed)).toEqual([false, false, false]);
  });

  it('a grant nobody gave is dropped with no answer (a stranger learns nothing of which grants exist)', async () => {
    const port = await start({});
    const header = Buffer.concat([LANE_PREFACE, Buffer.alloc(16, 7), Buffer.alloc(8)]);
    const socket = await sending(port, '127.0.0.2', Buffer.concat([header, Buffer.alloc(64, 1)]));
    expect((await closed(socket)).length).toBe(0);
  });

  it('a grant id guessed is read on like one that exists: dropped only once its record is whole', async () => {
    const port = await start({});
    const header = Buffer.concat([LANE_PREFACE, randomBytes(16), Buffer.alloc(8)]);
    const socket = await sending(port, '127.0.0.2', header);
    // Had the agent dropped it on the grant id, it would be gone after a whole TLS handshake (as
    // it is, on the same byte, for a grant that exists and a HELLO sealed with the wrong secret).
    await tlsHandshake(port);
    expect(socket.destroyed).toBe(false);
    const record = Buffer.alloc(4 + 17 + 8, 1);
    record.writeUInt32BE(17 + 8);
    socket.write(record.subarray(0, record.length - 1));
    await tlsHandshake(port);
    expect(socket.destroyed).toBe(false);
    socket.write(record.subarray(record.length - 1));
    expect((await closed(socket)).length).toBe(0);
  });

  it('a connection that is neither TLS nor a lane is dropped', async () => {
    const port = await start({});
    const socket = await sending(port, '127.0.0.2', Buffer.from('HGLANE/2 and more'));
    await closed(socket);
  });
});
