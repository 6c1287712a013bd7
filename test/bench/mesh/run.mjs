#!/usr/bin/env node
// Mesh benchmark (issue 13), on loopback, in this process: the WebRTC link (node-datachannel, one
// ordered reliable data channel, the link's FrameTransport with its 64 KiB chunks and backpressure)
// beside what it stands in for, measured in the same run:
// - data channel open time p50/p95 (offer, answer with gathered candidates, channel open);
// - bulk: BENCH_MIB (256) MiB of 256 KiB frames through the WebRTC transport, and through a raw TCP
//   socket: MB/s each and the ratio;
// - keystroke echo: a 100-byte frame and its echo, BENCH_ECHOES (500) times, over WebRTC and over
//   the direct link's transport (wrapWebSocket over a `ws` WebSocket on TLS, as the agent serves it):
//   p50/p99 each and the ratio.
// - a terminal beside a bulk transfer (T6): keystroke echo through the link's mux on one WebRTC link
//   while BENCH_MIB of bulk runs on another stream of it, p50/p99, beside the same link idle;
// Each WebRTC figure runs twice: with the transport features both sides name in the handshake
// (dc-joined-frames and dc-paced) and, as the reference, with dc-joined-frames only (the link
// before pacing): the ratios paced/unpaced are from the same run.
// - with delay (root only): the same bulk, BENCH_NETEM_MIB (64) MiB each way, WebRTC and raw TCP, in a
//   network namespace this bench makes and removes, whose loopback `tc netem` delays by 10 ms each
//   way (20 ms round trip); the ratio against TCP through the same delay.
// Targets (../shared/research/mesh.md): T1 open ≤ 500 ms p50 on loopback; T4 WebRTC ≥ 100 Mbit/s on
// loopback and ≥ 40 Mbit/s at 20 ms RTT. BENCH_MIB=1024 moves the 1 GiB of T4 (the default 256 MiB
// keeps the whole bench under 2 min on a loaded 2-core machine).
// ICE binds to 127.0.0.1 (libjuice gathers no loopback candidate otherwise).
// Then, as root, paths.mjs: the same comparisons end to end, through real agents and the core; and
// natlab.mjs: the data channel's open time across two NATs (port-preserving: p2p; symmetric: turn).
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer as createTcpServer, connect as tcpConnect } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { performance } from 'node:perf_hooks';
import nodeDataChannel from 'node-datachannel';
import selfsigned from 'selfsigned';
import WebSocket, { WebSocketServer } from 'ws';
import {
  BULK_FRAME_BYTES,
  BULK_STREAM_WINDOW,
  JOINED_FRAMES_FEATURE,
  Mux,
  answerWebRtc,
  offerWebRtc,
  offeredTransportFeatures,
  useTransportFeatures,
  wrapWebSocket,
} from '@hangar/shared';
import { percentile } from '../support.mjs';

const OPENS = Number(process.env.BENCH_OPENS ?? 30);
const MIB = Number(process.env.BENCH_MIB ?? 256);
const ECHOES = Number(process.env.BENCH_ECHOES ?? 500);
const config = { iceServers: [], bindAddress: '127.0.0.1' };
// BENCH_SCTP_SNDBUF=BYTES: the SCTP send buffer of every association this process makes (the
// library's default otherwise); what it holds is what a keystroke waits behind during a bulk.
if (process.env.BENCH_SCTP_SNDBUF)
  nodeDataChannel.setSctpSettings({ sendBufferSize: Number(process.env.BENCH_SCTP_SNDBUF) });
const FRAME = 256 * 1024;
const HIGH = 1024 * 1024;

/**
 * A WebRTC link pair with the transport features turned on as the link handshake does: `paced`
 * (the default) names everything each side offers (dc-joined-frames, dc-paced); false names only
 * dc-joined-frames, as the link did before pacing: the reference the paced figures are set beside.
 */
async function pair({ paced = true } = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      const offering = await offerWebRtc(nodeDataChannel, config);
      const answering = await answerWebRtc(nodeDataChannel, config, offering.offer);
      const [device, agent] = await Promise.all([offering.connect(answering.answer), answering.link]);
      const named = (link) => (paced ? offeredTransportFeatures(link.transport) : [JOINED_FRAMES_FEATURE]);
      useTransportFeatures(agent.transport, named(device));
      useTransportFeatures(device.transport, named(agent));
      return { device, agent };
    } catch (error) {
      if (error?.details?.retry !== true || attempt > 0) throw error;
    }
  }
}

async function openTimes() {
  const times = [];
  for (let i = 0; i < OPENS; i++) {
    const started = performance.now();
    const { device, agent } = await pair();
    times.push(performance.now() - started);
    device.transport.close();
    agent.transport.close();
  }
  return times;
}

/** Sends `total` bytes in FRAME-sized frames, keeping at most HIGH queued; resolves when all arrived. */
function pumpTransport(sender, receiver, total) {
  return new Promise((resolve) => {
    let received = 0;
    receiver.onFrame((frame) => {
      received += frame.length;
      if (received >= total) resolve();
    });
    const frame = new Uint8Array(FRAME).fill(7);
    let sent = 0;
    const fill = () => {
      while (sent < total && sender.bufferedAmount < HIGH) {
        sender.send(frame);
        sent += frame.length;
      }
    };
    sender.onDrain(fill);
    fill();
    const poll = setInterval(() => {
      fill();
      if (sent >= total) clearInterval(poll);
    }, 5);
  });
}

async function webRtcBulk(total, features) {
  const { device, agent } = await pair(features);
  const started = performance.now();
  await pumpTransport(device.transport, agent.transport, total);
  const seconds = (performance.now() - started) / 1000;
  device.transport.close();
  agent.transport.close();
  return total / seconds / 1e6;
}

async function tcpBulk(total) {
  const server = createTcpServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const done = new Promise((resolve) =>
    server.once('connection', (socket) => {
      let received = 0;
      socket.on('data', (chunk) => {
        received += chunk.length;
        if (received >= total) resolve(socket);
      });
    }),
  );
  const client = tcpConnect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const chunk = Buffer.alloc(FRAME, 7);
  const started = performance.now();
  let sent = 0;
  const write = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!client.write(chunk)) return client.once('drain', write);
    }
  };
  write();
  const socket = await done;
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  client.destroy();
  server.close();
  return total / seconds / 1e6;
}

async function echoTimes(sender, echoer) {
  echoer.onFrame((frame) => echoer.send(frame));
  const times = [];
  const payload = new Uint8Array(100).fill(1);
  for (let i = 0; i < ECHOES; i++) {
    const started = performance.now();
    await new Promise((resolve) => {
      const subscription = sender.onFrame(() => {
        subscription.dispose();
        resolve();
      });
      sender.send(payload);
    });
    times.push((performance.now() - started) * 1000);
  }
  return times;
}

/**
 * A terminal beside a bulk transfer on one WebRTC link, through the link's mux as the agent and the
 * core run it: the agent sends `total` bytes on a bulk stream while the device types one byte at a
 * time (every 5 ms) on a terminal stream and the agent echoes it. Echo times in ms, with bulk and
 * without (the same link before the bulk starts), and the bulk's MB/s.
 */
async function keystrokesDuringBulk(total, features) {
  const { device, agent } = await pair(features);
  const deviceMux = new Mux(device.transport, { role: 'client' });
  const agentMux = new Mux(agent.transport, { role: 'agent' });
  const terminal = deviceMux.openStream({ id: 1 });
  const terminalAgent = agentMux.openStream({ id: 1 });
  terminalAgent.onData((data) => terminalAgent.write(data, { now: true }));
  const type = async (until) => {
    const times = [];
    while (!until()) {
      const began = performance.now();
      await new Promise((resolve) => {
        const echo = terminal.onData(() => {
          echo.dispose();
          resolve();
        });
        terminal.write(Uint8Array.of(97), { now: true });
      });
      times.push(performance.now() - began);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return times;
  };
  let keys = 0;
  const idle = await type(() => ++keys > 200);

  const bulk = deviceMux.openStream({ id: 3, window: BULK_STREAM_WINDOW });
  const bulkAgent = agentMux.openStream({ id: 3, window: BULK_STREAM_WINDOW, maxFrameBytes: BULK_FRAME_BYTES });
  let received = 0;
  let finished = false;
  const arrived = new Promise((resolve) =>
    bulk.onData((data) => {
      received += data.length;
      if (received >= total) resolve();
    }),
  );
  const chunk = new Uint8Array(256 * 1024).fill(7);
  let sent = 0;
  const fill = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!bulkAgent.write(chunk)) return;
    }
  };
  bulkAgent.onDrain(fill);
  const started = performance.now();
  fill();
  void arrived.then(() => (finished = true));
  const busy = await type(() => finished);
  await arrived;
  const mbps = total / ((performance.now() - started) / 1000) / 1e6;
  deviceMux.close();
  agentMux.close();
  device.transport.close();
  agent.transport.close();
  return { idle, busy, mbps };
}

async function wssPair() {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'bench' }], { keySize: 2048, days: 1 });
  const server = createHttpsServer({ cert: pems.cert, key: pems.private, minVersion: 'TLSv1.3' });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise((resolve) => wss.once('connection', (ws, req) => resolve({ ws, socket: req.socket })));
  const client = new WebSocket(`wss://127.0.0.1:${server.address().port}/`, {
    rejectUnauthorized: false,
    perMessageDeflate: false,
  });
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  const { ws, socket } = await accepted;
  return {
    device: wrapWebSocket(client, { socket: client._socket, later: setImmediate }),
    agent: wrapWebSocket(ws, { socket, later: setImmediate }),
    close() {
      client.terminate();
      wss.close();
      server.close();
    },
  };
}

const fmt = (n, digits = 0) => n.toFixed(digits);

if (process.env.BENCH_NETEM_CHILD) {
  // Inside the delayed namespace: bulk only, one JSON line for the parent.
  const bytes = Number(process.env.BENCH_NETEM_MIB ?? 64) * 1024 * 1024;
  // The round trip as TCP's handshake sees it (the delay is really there).
  const probe = createTcpServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const began = performance.now();
  const probing = tcpConnect(probe.address().port, '127.0.0.1');
  await new Promise((resolve) => probing.once('connect', resolve));
  const rttMs = performance.now() - began;
  probing.destroy();
  probe.close();
  const tcpDelayed = await tcpBulk(bytes);
  const rtcUnpaced = await webRtcBulk(bytes, { paced: false });
  const rtcDelayed = await webRtcBulk(bytes);
  console.log(JSON.stringify({ tcp: tcpDelayed, rtc: rtcDelayed, rtcUnpaced, rttMs }));
  await new Promise((resolve) => setTimeout(resolve, 300));
  nodeDataChannel.cleanup();
  process.exit(0);
}

// BENCH_ONLY=T6: only the terminal beside a bulk transfer (paced, and unpaced as the reference),
// for comparing two builds quickly.
if (process.env.BENCH_ONLY === 'T6') {
  const total = MIB * 1024 * 1024;
  const p = (values, q) => percentile(values, q);
  const unpaced = await keystrokesDuringBulk(total, { paced: false });
  const during = await keystrokesDuringBulk(total);
  console.log(
    `[mesh] T6, ${MIB} MiB: paced p50 ${fmt(p(during.busy, 50), 2)} ms p99 ${fmt(p(during.busy, 99), 2)} ms (${during.busy.length} keys, ${fmt(during.mbps, 1)} MB/s); ` +
      `idle p50 ${fmt(p(during.idle, 50), 2)} p99 ${fmt(p(during.idle, 99), 2)} ms; unpaced p50 ${fmt(p(unpaced.busy, 50), 2)} p99 ${fmt(p(unpaced.busy, 99), 2)} ms (${fmt(unpaced.mbps, 1)} MB/s)`,
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  nodeDataChannel.cleanup();
  process.exit(0);
}

const opens = await openTimes();
console.log(
  `[mesh] data channel open (loopback, offer → answer → open), ${OPENS} runs: p50 ${fmt(percentile(opens, 50))} ms, p95 ${fmt(percentile(opens, 95))} ms`,
);

const total = MIB * 1024 * 1024;
const tcp = await tcpBulk(total);
const rtcUnpaced = await webRtcBulk(total, { paced: false });
const rtc = await webRtcBulk(total);
console.log(
  `[mesh] ${MIB} MiB bulk: WebRTC link ${fmt(rtc, 1)} MB/s (${fmt((rtc * 8) / 1e3, 2)} Gbit/s), raw TCP ${fmt(tcp, 1)} MB/s; WebRTC/TCP ${fmt(rtc / tcp, 3)}; ` +
    `without pacing (reference) ${fmt(rtcUnpaced, 1)} MB/s, paced/unpaced ${fmt(rtc / rtcUnpaced, 2)}`,
);

const rtcPair = await pair();
const rtcEcho = await echoTimes(rtcPair.device.transport, rtcPair.agent.transport);
rtcPair.device.transport.close();
rtcPair.agent.transport.close();
const wss = await wssPair();
const wssEcho = await echoTimes(wss.device, wss.agent);
wss.close();
const p = (values, q) => percentile(values, q);
console.log(
  `[mesh] keystroke echo (100 B), ${ECHOES} rounds: WebRTC p50 ${fmt(p(rtcEcho, 50))} µs p99 ${fmt(p(rtcEcho, 99))} µs; ` +
    `direct wss p50 ${fmt(p(wssEcho, 50))} µs p99 ${fmt(p(wssEcho, 99))} µs; WebRTC/wss p50 ${fmt(p(rtcEcho, 50) / p(wssEcho, 50), 2)}`,
);

const unpaced = await keystrokesDuringBulk(total, { paced: false });
const during = await keystrokesDuringBulk(total);
console.log(
  `[mesh] keystroke echo through the mux on one WebRTC link, during ${MIB} MiB of bulk on another stream (${fmt(during.mbps, 1)} MB/s): ` +
    `p50 ${fmt(p(during.busy, 50), 2)} ms p99 ${fmt(p(during.busy, 99), 2)} ms (${during.busy.length} keys); the same link idle (reference): ` +
    `p50 ${fmt(p(during.idle, 50), 2)} ms p99 ${fmt(p(during.idle, 99), 2)} ms; p99 ratio ${fmt(p(during.busy, 99) / p(during.idle, 99), 1)}× (T6 p99 ≤ 50 ms: ${p(during.busy, 99) <= 50 ? 'met' : 'missed'})`,
);
console.log(
  `[mesh]   the same without pacing (reference; dc-joined-frames only, as before dc-paced): ${fmt(unpaced.mbps, 1)} MB/s, ` +
    `p50 ${fmt(p(unpaced.busy, 50), 2)} ms p99 ${fmt(p(unpaced.busy, 99), 2)} ms (${unpaced.busy.length} keys); ` +
    `paced/unpaced p50 ${fmt(p(during.busy, 50) / p(unpaced.busy, 50), 2)} p99 ${fmt(p(during.busy, 99) / p(unpaced.busy, 99), 2)}, MB/s ${fmt(during.mbps / unpaced.mbps, 2)}`,
);

console.log(
  `[mesh] targets: open p50 ≤ 500 ms (${percentile(opens, 50) <= 500 ? 'met' : 'missed'}); WebRTC on loopback ≥ 100 Mbit/s (${fmt(rtc * 8, 0)} Mbit/s: ${rtc * 8 >= 100 ? 'met' : 'missed'})`,
);

netem();

/** The bulk through 20 ms of round trip, in a namespace of its own (needs root: skipped otherwise). */
function netem() {
  const ns = `hgbench${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'ignore' });
  } catch {
    console.log('[mesh] 20 ms RTT: skipped (needs root: ip netns)');
    return;
  }
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const added = spawnSync('ip', [
      'netns',
      'exec',
      ns,
      'tc',
      'qdisc',
      'add',
      'dev',
      'lo',
      'root',
      'netem',
      'delay',
      '10ms',
      'limit',
      '100000',
    ]);
    const mib = Number(process.env.BENCH_NETEM_MIB ?? 64);
    const child = spawnSync('ip', ['netns', 'exec', ns, process.execPath, new URL(import.meta.url).pathname], {
      env: { ...process.env, BENCH_NETEM_CHILD: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const line = child.stdout.trim().split('\n').pop() ?? '';
    if (child.status !== 0 || !line.startsWith('{')) {
      console.log(`[mesh] 20 ms RTT: failed (${child.status ?? child.signal}): ${child.stderr.slice(-300)}`);
      return;
    }
    const { tcp: tcpDelayed, rtc: rtcDelayed, rtcUnpaced, rttMs } = JSON.parse(line);
    console.log(
      `[mesh] ${mib} MiB bulk at 20 ms RTT (tc netem on a namespace's loopback; TCP handshake ${fmt(rttMs, 1)} ms): WebRTC link ${fmt(rtcDelayed, 1)} MB/s (${fmt(rtcDelayed * 8, 0)} Mbit/s), raw TCP ${fmt(tcpDelayed, 1)} MB/s; WebRTC/TCP ${fmt(rtcDelayed / tcpDelayed, 3)}; ` +
        `without pacing (reference) ${fmt(rtcUnpaced * 8, 0)} Mbit/s, paced/unpaced ${fmt(rtcDelayed / rtcUnpaced, 2)}; target ≥ 40 Mbit/s: ${rtcDelayed * 8 >= 40 ? 'met' : 'missed'}`,
    );
  } finally {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

// Every peer connection is closed: let their threads finish, then stop the library's.
await new Promise((resolve) => setTimeout(resolve, 300));
nodeDataChannel.cleanup();

// End to end through real agents, a relay and the core (paths.mjs: preview req/s over WebRTC vs
// direct TCP to the same origin, keystroke echo through hangar attach over WebRTC vs the direct
// link); as root only (it makes a network namespace).
if (spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status === 0 && process.getuid?.() === 0) {
  const paths = spawnSync(process.execPath, [new URL('./paths.mjs', import.meta.url).pathname], { stdio: 'inherit' });
  if (paths.status !== 0) process.exitCode = 1;
  // Data-channel open time across the NAT lab (needs coturn too): the loopback figure above is its reference.
  if (spawnSync('turnserver', ['--version'], { stdio: 'ignore' }).status === 0) {
    const lab = spawnSync(process.execPath, [new URL('./natlab.mjs', import.meta.url).pathname], { stdio: 'inherit' });
    if (lab.status !== 0) process.exitCode = 1;
  } else {
    console.log('[mesh natlab] skipped: no coturn (turnserver)');
  }
} else {
  console.log(
    '[mesh] end to end (preview req/s, keystroke echo through hangar attach): skipped (needs root: ip netns)',
  );
}
