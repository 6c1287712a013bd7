/**
 * A lane's keys do not outlive its relay: once a relay has ended, no copy of either key is left
 * anywhere in its process's memory (the addon's copies cleansed, native.ts's zeroed, OpenSSL's
 * contexts freed). The child process relays one lane and ends; this process, its parent, reads the
 * child's writable memory through /proc/<pid>/mem and looks for the keys.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RecordType } from '@hangar/lane';
import { PeerLane, closed } from './support/sockets.js';

const LANE_DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const CHILD = `
import { connect, createServer } from 'node:net';
const { loadNativeLanes } = await import(process.argv[1]);
const [, , port, send, receive, canary] = process.argv;
const kept = Buffer.from(canary, 'hex'); // what the scan must find: it sees this process's memory
const lanes = loadNativeLanes();
if ('unavailable' in lanes) throw new Error(lanes.unavailable);
const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const accepted = new Promise((resolve) => server.once('connection', resolve));
const app = connect(server.address().port, '127.0.0.1');
await new Promise((resolve) => app.once('connect', resolve));
const relayEnd = await accepted;
server.close();
const net = connect(Number(port), '127.0.0.1');
await new Promise((resolve) => net.once('connect', resolve));
const local = lanes.adoptSocket(relayEnd).fd;
const keys = { send: Buffer.from(send, 'hex'), receive: Buffer.from(receive, 'hex') };
const relay = lanes.relay({
  net: lanes.adoptSocket(net).fd, localRead: local, localWrite: local, closeLocal: true, localKind: 'socket',
  keys, sendSeq: 0n, receiveSeq: 0n,
});
keys.send.fill(0); // the caller's own copies are the caller's to wipe
keys.receive.fill(0);
app.write('some bytes');
const end = await relay.ended;
app.destroy();
// The relay frees its memory on its own thread once libuv has closed its handles: a turn or two.
await new Promise((resolve) => setTimeout(resolve, 200));
console.log('ended ' + end.how + ' ' + kept.length);
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
`;

/** How many times each needle occurs in the writable memory of process `pid`. */
function countInMemory(pid: number, needles: Buffer[]): number[] {
  const counts = needles.map(() => 0);
  const mem = openSync(`/proc/${pid}/mem`, 'r');
  const piece = Buffer.alloc(4 << 20);
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const match = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
      if (!match || line.includes('[vvar]') || line.includes('[vsyscall]')) continue;
      const start = parseInt(match[1]!, 16);
      const stop = parseInt(match[2]!, 16);
      // Pieces overlap by 31 bytes so a key across two pieces is found (perhaps twice: any count > 0 says it is there).
      for (let at = start; at < stop; at += piece.length - 31) {
        let length: number;
        try {
          length = readSync(mem, piece, 0, Math.min(piece.length, stop - at), at);
        } catch {
          break; // an unreadable region (a guard page)
        }
        const view = piece.subarray(0, length);
        needles.forEach((needle, i) => {
          for (let found = view.indexOf(needle); found >= 0; found = view.indexOf(needle, found + 1)) counts[i]! += 1;
        });
        if (length < Math.min(piece.length, stop - at)) break;
      }
    }
  } finally {
    closeSync(mem);
  }
  return counts;
}

describe("a lane's keys", () => {
  it('are gone from the process once its relay has ended', async () => {
    expect(existsSync(LANE_DIST), 'lane/dist is built by npm run build (tsc -b)').toBe(true);
    const keys = { send: randomBytes(32), receive: randomBytes(32) };
    const canary = randomBytes(32);
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    let stdout = '';
    let stderr = '';
    const child = execFile(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        CHILD,
        pathToFileURL(LANE_DIST).href,
        String(address.port),
        keys.send.toString('hex'),
        keys.receive.toString('hex'),
        canary.toString('hex'),
      ],
      { timeout: 30_000 },
    );
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ended = new Promise<void>((resolve) =>
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('ended')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const peerEnd = await accepted;
    server.close();
    try {
      // The test's end of the lane: it receives with the child's send key and back.
      const peer = new PeerLane(peerEnd, { send: keys.receive, receive: keys.send });
      expect((await peer.next())?.payload.toString()).toBe('some bytes'); // the keys were in use
      peer.send(RecordType.Close, Buffer.from('{}'));
      await Promise.race([ended, exited]);
      expect(stdout, stderr).toContain('ended closed');
      const [send, receive, kept] = countInMemory(child.pid!, [keys.send, keys.receive, canary]);
      expect(kept, 'the scan finds a buffer the child keeps').toBeGreaterThan(0);
      expect({ send, receive }).toEqual({ send: 0, receive: 0 });
      child.stdin!.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill();
      await closed(peerEnd);
    }
  });
});
