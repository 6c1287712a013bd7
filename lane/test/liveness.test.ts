/**
 * An active relay keeps its Node process alive (a ref'd threadsafe function) and an ended one does
 * not: a child process whose only live thing is a relay waits for the lane's CLOSE, reports its
 * end, and then exits by itself. A relay whose JavaScript environment goes first (a Worker
 * terminated) ends with it and never calls into the freed environment.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RecordType, deriveLaneKeys } from '@hangar/lane';
import { PeerLane, closed } from './support/sockets.js';

const LANE_DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const CHILD = `
import { connect, createServer } from 'node:net';
const { loadNativeLanes, deriveLaneKeys } = await import(process.argv[1]);
const [, , port, secret, grant] = process.argv;
const lanes = loadNativeLanes();
if ('unavailable' in lanes) throw new Error(lanes.unavailable);
const pair = async () => {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const app = connect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => app.once('connect', resolve));
  const other = await accepted;
  server.close();
  return [app, other];
};
const [app, relayEnd] = await pair();
const net = connect(Number(port), '127.0.0.1');
await new Promise((resolve) => net.once('connect', resolve));
const local = lanes.adoptSocket(relayEnd).fd;
const relay = lanes.relay({
  net: lanes.adoptSocket(net).fd, localRead: local, localWrite: local, closeLocal: true, localKind: 'socket',
  keys: deriveLaneKeys(Buffer.from(secret, 'hex'), Buffer.from(grant, 'hex'), 9n, 'agent'), sendSeq: 0n, receiveSeq: 0n,
});
app.unref(); // from here on only the relay holds the process
relay.ended.then((end) => console.log('ended ' + end.how + ' ' + end.reason.toString()));
console.log('ready');
`;

describe('the relay and its process', () => {
  it('keeps the process alive while active, and lets it exit once ended', async () => {
    expect(existsSync(LANE_DIST), 'lane/dist is built by npm run build (tsc -b)').toBe(true);
    const secret = randomBytes(32);
    const grant = randomBytes(16);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    let stdout = '';
    let onReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const child = execFile(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        CHILD,
        pathToFileURL(LANE_DIST).href,
        String(address.port),
        secret.toString('hex'),
        grant.toString('hex'),
      ],
      { timeout: 30_000 },
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('ready')) onReady();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const peerEnd = await accepted;
    server.close();
    try {
      await Promise.race([ready, exited]);
      expect(stdout).toContain('ready');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grant, 9n, 'client'));
      // Still alive after the child's script is done: the relay answers.
      peer.send(RecordType.Close, Buffer.from('{"code":"bye"}'));
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(stdout).toContain('ended closed {"code":"bye"}');
    } finally {
      child.kill();
      await closed(peerEnd);
    }
  });
});

/** A Worker that starts a relay (the agent's side of lane 9 to `port`) and is then terminated. */
const WORKER_CHILD = `
import { Worker } from 'node:worker_threads';
const [, dist, port, secret, grant] = process.argv;
const worker = new Worker(\`
  const { workerData, parentPort } = require('node:worker_threads');
  const { connect, createServer } = require('node:net');
  (async () => {
    const { loadNativeLanes, deriveLaneKeys } = await import(workerData.dist);
    const lanes = loadNativeLanes();
    if ('unavailable' in lanes) throw new Error(lanes.unavailable);
    const server = createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise((resolve) => server.once('connection', resolve));
    const app = connect(server.address().port, '127.0.0.1');
    await new Promise((resolve) => app.once('connect', resolve));
    const relayEnd = await accepted;
    server.close();
    const net = connect(Number(workerData.port), '127.0.0.1');
    await new Promise((resolve) => net.once('connect', resolve));
    const local = lanes.adoptSocket(relayEnd).fd;
    lanes.relay({
      net: lanes.adoptSocket(net).fd, localRead: local, localWrite: local, closeLocal: true, localKind: 'socket',
      keys: deriveLaneKeys(Buffer.from(workerData.secret, 'hex'), Buffer.from(workerData.grant, 'hex'), 9n, 'agent'),
      sendSeq: 0n, receiveSeq: 0n,
    });
    parentPort.postMessage('ready');
  })();
\`, { eval: true, execArgv: [], workerData: { dist, port, secret, grant } });
await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
await worker.terminate();
console.log('terminated');
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
`;

describe('a relay whose environment is torn down', () => {
  it('ends its lane and never calls into the freed environment (a terminated Worker)', async () => {
    const secret = randomBytes(32);
    const grant = randomBytes(16);
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    let stdout = '';
    let stderr = '';
    let onTerminated: () => void = () => {};
    const terminated = new Promise<void>((resolve) => (onTerminated = resolve));
    const child: ChildProcess = execFile(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        WORKER_CHILD,
        pathToFileURL(LANE_DIST).href,
        String(address.port),
        secret.toString('hex'),
        grant.toString('hex'),
      ],
      { timeout: 30_000 },
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('terminated')) onTerminated();
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const peerEnd = await accepted;
    server.close();
    try {
      await Promise.race([terminated, exited]);
      expect(stdout, stderr).toContain('terminated');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grant, 9n, 'client'));
      // The relay's end now reaches its (freed) threadsafe function unless the finalizer cut it off.
      peer.send(RecordType.Close, Buffer.from('{"code":"bye"}'));
      // The Worker's app socket is gone (EOF), and the relay is closed as close() would (CLOSE): or
      // it ends at the CLOSE above. Either way the lane ends; it is never left running.
      for (let record = await peer.next(); record; record = await peer.next()) {
        expect([RecordType.Eof, RecordType.Close]).toContain(record.type);
      }
      child.stdin!.end();
      expect(await exited, stderr).toEqual({ code: 0, signal: null });
    } finally {
      child.kill();
      await closed(peerEnd);
    }
  });
});
