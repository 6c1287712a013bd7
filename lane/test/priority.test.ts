/**
 * Bulk lanes must not starve interactive ones (issue 16): a socket lane (a preview, a download) is
 * relayed by a thread of its own at a lower CPU priority (nice +10 over the process), a terminal's
 * lane (a pty here) by a thread at the process's priority with the echo path's 0.1 ms slice, which
 * preferLatency() also gives the agent's tmux processes. Read from /proc: the threads' names, nice
 * values and slices, and which thread's CPU time grows while each lane carries bytes.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { release } from 'node:os';
import { spawn as spawnPty, type IPty } from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordType, deriveLaneKeys, type NativeLanes } from '@hangar/lane';
import { PeerLane, hashUntilEnd, sendRandom, useNativeRelay } from './support/sockets.js';

let lanes: NativeLanes;
const secret = randomBytes(32);
const grantId = randomBytes(16);
const { relays, pair } = useNativeRelay((loaded) => (lanes = loaded));

type Thread = { tid: string; nice: number; cpuNs: number; sliceNs: number | undefined };

/** This process's threads named `name` (/proc/self/task/<tid>/comm), with nice and CPU time. */
function threadsNamed(name: string): Thread[] {
  const found: Thread[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== name) continue;
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19
      const cpuNs = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const slice = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/self/task/${tid}/sched`, 'utf8'));
      found.push({ tid, nice, cpuNs, sliceNs: slice ? Number(slice[1]) : undefined });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return found;
}

function theThread(name: string): Thread {
  const found = threadsNamed(name);
  expect(
    found.map((t) => t.tid),
    `threads named ${name}`,
  ).toHaveLength(1);
  return found[0]!;
}

function slicesPerThread(): boolean {
  const [major, minor] = release().split('.').map(Number);
  return major! > 6 || (major === 6 && minor! >= 12);
}

/** A process's main thread: nice, slice (ns), and whether its children start afresh (reset on fork). */
function schedOf(pid: number): { nice: number; sliceNs: number; policy: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const sched = readFileSync(`/proc/${pid}/sched`, 'utf8');
  return {
    nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]),
    sliceNs: Number(/^se\.slice\s*:\s*(\d+)/m.exec(sched)![1]),
    policy: Number(/^policy\s*:\s*(\d+)/m.exec(sched)![1]),
  };
}

/** A child that waits for a line on stdin, then prints its own child's slice (a fork after the change). */
function waitingChild(prefix: string[] = []): {
  child: ChildProcessWithoutNullStreams;
  grandchildSlice: () => Promise<number>;
} {
  const program = 'read line; grep -h "^se.slice" /proc/self/sched';
  const child = spawn(prefix[0] ?? 'sh', [...prefix.slice(1), ...(prefix.length ? ['sh'] : []), '-c', program]);
  children.push(child);
  let out = '';
  child.stdout.on('data', (data: Buffer) => (out += data.toString()));
  const grandchildSlice = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin.end('go\n');
    await exited;
    return Number(/(\d+)\s*$/.exec(out.trim())![1]);
  };
  return { child, grandchildSlice };
}

/** Once `child` (nice or chrt) has set itself up and exec'd sh (its comm says so), at most 5 s. */
async function runningSh(child: ChildProcessWithoutNullStreams): Promise<void> {
  await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  for (let i = 0; readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() !== 'sh'; i++) {
    if (i === 500) throw new Error(`${child.spawnfile} did not exec sh within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function mainNice(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** Relays 8 MiB through two socket relays back to back. */
async function carryBulk() {
  const [laneA, laneB] = await pair();
  const [appA, endA] = await pair();
  const [appB, endB] = await pair();
  for (const [net, local, role] of [
    [laneA, endA, 'client'],
    [laneB, endB, 'agent'],
  ] as const) {
    const fd = lanes.adoptSocket(local).fd;
    relays.push(
      lanes.relay({
        net: lanes.adoptSocket(net).fd,
        localRead: fd,
        localWrite: fd,
        localKind: 'socket',
        closeLocal: true,
        keys: deriveLaneKeys(secret, grantId, 1n, role),
        sendSeq: 0n,
        receiveSeq: 0n,
      }),
    );
  }
  const size = 8 << 20;
  const atB = hashUntilEnd(appB);
  const sent = await sendRandom(appA, size);
  appB.end();
  expect(await atB).toEqual({ hash: sent, length: size });
  expect((await Promise.all(relays.map((relay) => relay.ended))).map((end) => end.how)).toEqual(['eof', 'eof']);
}

/** Echoes keys through cat in a pty relayed as a terminal's lane. */
async function carryKeys() {
  const pty: IPty = spawnPty('cat', [], { cols: 80, rows: 24, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const internals = pty as unknown as { _fd: number; _socket: Socket & { _handle: { readStop(): void } } };
  internals._socket.pause();
  await new Promise((resolve) => setImmediate(resolve));
  internals._socket._handle.readStop();
  const master = lanes.dupFd(internals._fd);
  const [peerEnd, laneEnd] = await pair();
  relays.push(
    lanes.relay({
      net: lanes.adoptSocket(laneEnd).fd,
      localRead: master,
      localWrite: master,
      localKind: 'pty',
      closeLocal: true,
      keys: deriveLaneKeys(secret, grantId, 2n, 'agent'),
      sendSeq: 0n,
      receiveSeq: 0n,
    }),
  );
  const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 2n, 'client'));
  for (let i = 0; i < 20; i++) {
    const key = `key ${i}\r`;
    peer.send(RecordType.Data, Buffer.from(key));
    let output = '';
    while (!output.includes(`key ${i}\r\n`)) output += (await peer.next())!.payload.toString();
  }
  pty.kill();
  internals._socket.destroy();
}

describe("lanes' relay threads", () => {
  it('relay a socket lane on a thread 10 nicer than the process, and a terminal lane at its priority with a 0.1 ms slice', async () => {
    await carryBulk(); // both threads exist from the first relay on
    const bulkBefore = theThread('lane-bulk');
    const interactiveBefore = theThread('lane-relay');
    expect(bulkBefore.nice).toBe(Math.min(19, mainNice() + 10));
    expect(interactiveBefore.nice).toBe(mainNice());
    // A slice of 0.1 ms for the terminals' where the kernel takes one per thread (6.12 on); bulk
    // keeps the default (a short one let each of its wake-ups cut short whatever ran).
    if (slicesPerThread()) {
      expect(interactiveBefore.sliceNs).toBe(100_000);
      expect(bulkBefore.sliceNs).toBeGreaterThan(100_000);
    }

    relays.splice(0);
    await carryBulk();
    const bulkAfter = theThread('lane-bulk');
    const interactiveAfter = theThread('lane-relay');
    // 8 MiB sealed and opened: the bulk thread did it, the other one slept through it.
    expect(bulkAfter.cpuNs).toBeGreaterThan(bulkBefore.cpuNs);
    expect(interactiveAfter.cpuNs).toBe(interactiveBefore.cpuNs);

    await carryKeys();
    const bulkLast = theThread('lane-bulk');
    const interactiveLast = theThread('lane-relay');
    // The keys: on the other thread (the bulk one may still close the last relays' handles).
    expect(interactiveLast.cpuNs - interactiveAfter.cpuNs).toBeGreaterThan(bulkLast.cpuNs - bulkAfter.cpuNs);
    expect([bulkLast.nice, interactiveLast.nice]).toEqual([Math.min(19, mainNice() + 10), mainNice()]);
  });

  it.runIf(slicesPerThread())(
    "preferLatency gives a child of ours the 0.1 ms slice, keeps its nice, and not its children's",
    async () => {
      const { child, grandchildSlice } = waitingChild(['nice', '-n', '5']);
      await runningSh(child);
      const before = schedOf(child.pid!);
      expect(before.sliceNs).toBeGreaterThan(100_000);
      expect(lanes.preferLatency(child.pid)).toBeUndefined();
      expect(schedOf(child.pid!)).toEqual({ nice: before.nice, sliceNs: 100_000, policy: before.policy });
      expect(before.nice).toBe(Math.min(19, mainNice() + 5));
      // What it starts (a pane's program under the tmux server) begins with the default slice.
      expect(await grandchildSlice()).toBe(before.sliceNs);
    },
  );

  it.runIf(slicesPerThread())('preferLatency leaves a batch thread as the user made it, and says why', async () => {
    const { child } = waitingChild(['chrt', '--batch', '0']);
    await runningSh(child);
    const before = schedOf(child.pid!);
    expect(before.policy).toBe(3); // SCHED_BATCH
    expect(lanes.preferLatency(child.pid)).toBe('EPERM');
    expect(schedOf(child.pid!)).toEqual(before);
    expect(() => lanes.preferLatency(-1)).toThrow(/tid must be an integer ≥ 0/);
  });
});
