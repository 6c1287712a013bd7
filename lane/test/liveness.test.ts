/**
 * An active relay keeps its Node process alive (a ref'd threadsafe function) and an ended one does
 * not: a child process whose only live thing is a relay waits for the lane's CLOSE, reports its
 * end, and then exits by itself.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
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
