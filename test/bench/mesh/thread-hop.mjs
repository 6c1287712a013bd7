#!/usr/bin/env node
// What a worker thread for the peer connection would cost against what the WebRTC library costs the
// main thread today, per message, in the same run: an echo of BENCH_HOP_BYTES (11,000: a preview
// turn of about five responses) over a node-datachannel channel between two peer connections in
// this process (each echo is two sends and two received messages on the main thread), and the same
// echo through a worker thread by postMessage with the buffer transferred (one send and one
// receive on the main thread; the worker's share beside it). CPU per echo by thread, from /proc.
// Not a test: it prints numbers.
import { readFileSync, readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import nodeDataChannel from 'node-datachannel';

const ECHOES = Number(process.env.BENCH_HOP_ECHOES ?? 10000);
const BYTES = Number(process.env.BENCH_HOP_BYTES ?? 11000);
const WINDOW = 8;

/** CPU seconds by thread: the main thread apart ("main"), the rest summed by name. */
function threadCpu() {
  const byName = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = Number(tid) === process.pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return byName;
}

function perEcho(before, after) {
  return [...after]
    .map(([name, seconds]) => [name, seconds - (before.get(name) ?? 0)])
    .filter(([, seconds]) => seconds > 0)
    .map(([name, seconds]) => `${name} ${((seconds * 1e6) / ECHOES).toFixed(1)}`)
    .join(', ');
}

/** Runs ECHOES echoes, WINDOW in flight: `send()` starts one, `onEcho(fn)` hears each back. */
async function echoes(send, onEcho) {
  let back = 0;
  const before = threadCpu();
  await new Promise((resolve) => {
    onEcho(() => {
      back++;
      if (back === ECHOES) resolve();
      else if (back + WINDOW <= ECHOES) send();
    });
    for (let i = 0; i < WINDOW; i++) send();
  });
  return perEcho(before, threadCpu());
}

/** Two peer connections in this process with an open channel between them, or null within 10 s. */
async function channelPair() {
  const config = { iceServers: [], bindAddress: '127.0.0.1' };
  const a = new nodeDataChannel.PeerConnection('a', config);
  const b = new nodeDataChannel.PeerConnection('b', config);
  a.onLocalDescription((sdp, type) => b.setRemoteDescription(sdp, type));
  a.onLocalCandidate((candidate, mid) => b.addRemoteCandidate(candidate, mid));
  b.onLocalDescription((sdp, type) => a.setRemoteDescription(sdp, type));
  b.onLocalCandidate((candidate, mid) => a.addRemoteCandidate(candidate, mid));
  const far = new Promise((resolve) => b.onDataChannel(resolve));
  const near = a.createDataChannel('hop');
  const open = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    near.onOpen(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  const close = async (...channels) => {
    for (const channel of channels) channel.close();
    a.close();
    b.close();
    // Let the connections' threads finish before the next pair or the library's cleanup().
    await new Promise((resolve) => setTimeout(resolve, 300));
  };
  if (!open) {
    await close(near);
    return null;
  }
  return { near, far: await far, close };
}

async function overDataChannel() {
  let pair = await channelPair();
  if (!pair) pair = await channelPair(); // now and then ICE on loopback takes a second try
  if (!pair) throw new Error('no data channel opened on loopback in two tries');
  const { near, far, close } = pair;
  far.onMessage((message) => far.sendMessageBinary(message));
  const message = new Uint8Array(BYTES);
  const result = await echoes(
    () => near.sendMessageBinary(message),
    (listener) => near.onMessage(listener),
  );
  await close(near, far);
  return result;
}

async function overWorker() {
  const worker = new Worker(
    `require('node:worker_threads').parentPort.on('message', function (m) { this.postMessage(m, [m.buffer]); });`,
    { eval: true },
  );
  await new Promise((resolve) => worker.once('online', resolve));
  const result = await echoes(
    () => {
      const message = new Uint8Array(BYTES);
      worker.postMessage(message, [message.buffer]);
    },
    (listener) => worker.on('message', listener),
  );
  await worker.terminate();
  return result;
}

for (let round = 0; round < 2; round++) {
  console.log(`[thread hop] CPU µs per echo of ${BYTES} bytes, by thread:`);
  console.log(`  node-datachannel, two peer connections in this process: ${await overDataChannel()}`);
  console.log(`  postMessage to a worker, buffer transferred:             ${await overWorker()}`);
}
// Every connection is closed and settled: exit without the library's cleanup(), which crashed
// this process now and then (SIGSEGV, SIGABRT) after small-message runs.
process.exit(0);
