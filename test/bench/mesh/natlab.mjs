#!/usr/bin/env node
// Data-channel open time across the NAT lab (issue 13, mesh.md T1: ≤ 1.5 s p50, ≤ 3 s p95), as root:
// ../shared/tools/natlab.py builds two hosts each behind its own NAT and a public segment where
// coturn (STUN and TURN) runs; the device's side (natlab-peer.mjs offer) behind natB opens the
// link's data channel to the agent's side behind natA, BENCH_NAT_OPENS times, through port-preserving
// NATs (hole-punched: p2p) and through symmetric ones (relayed: turn). Each open is timed from the
// offer's gathering to the channel open, signals carried by this process (no relay in between);
// run.mjs runs it after its loopback open times, the reference. Every namespace and process is
// removed at the end, also on failure.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { percentile } from '../support.mjs';
import { NATLAB, PUB_IP, buildLab, removeLab } from '../../support/natlab-lab.mjs';

const OPENS = Number(process.env.BENCH_NAT_OPENS ?? 10);
const PEER = join(import.meta.dirname, 'natlab-peer.mjs');

/** A process whose stdout is JSON lines, read one at a time. */
function lines(child) {
  const queue = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line);
    if (waiters.length > 0) waiters.shift()(message);
    else queue.push(message);
  });
  return {
    next: (timeoutMs = 15_000) =>
      queue.length > 0
        ? Promise.resolve(queue.shift())
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no answer from a peer within 15 s')), timeoutMs);
            waiters.push((message) => {
              clearTimeout(timer);
              resolve(message);
            });
          }),
    send: (message) => child.stdin.write(`${JSON.stringify(message)}\n`),
  };
}

async function opensAcross(mode) {
  const ns = buildLab(mode);
  const children = [];
  try {
    const inside = (where, argv, stderr = 'inherit') => {
      const child = spawn('ip', ['netns', 'exec', ns[where], ...argv], { stdio: ['pipe', 'pipe', stderr] });
      children.push(child);
      return child;
    };
    // coturn's complaints about what this lab lacks (IPv6) are left out.
    const turnserver = inside(
      'pub',
      [
        'turnserver',
        '-n',
        '--listening-ip',
        PUB_IP,
        '--relay-ip',
        PUB_IP,
        '--listening-port',
        '3478',
        '--lt-cred-mech',
        '--user',
        'bench:secret',
        '--realm',
        'hangar',
        '--no-tls',
        '--no-dtls',
        '--no-cli',
        '--log-file',
        'stdout',
        '--simple-log',
      ],
      'ignore',
    );
    // Listening once its log says so, or after 1.5 s (as natlab.py's own check waits).
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 1500);
      createInterface({ input: turnserver.stdout }).on('line', (line) => {
        if (/UDP listener opened/i.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const args = [`stun:${PUB_IP}:3478`, `turn:${PUB_IP}:3478`, 'bench', 'secret'];
    const agent = lines(inside('hostA', [process.execPath, PEER, 'answer', ...args]));
    const device = lines(inside('hostB', [process.execPath, PEER, 'offer', ...args]));
    const times = [];
    const paths = new Set();
    let failed = 0;
    for (let i = 0; i < OPENS; i++) {
      device.send({ go: true });
      const offer = await device.next();
      if (offer.error) throw new Error(`offer: ${offer.error}`);
      agent.send(offer);
      const answer = await agent.next();
      if (answer.error) throw new Error(`answer: ${answer.error}`);
      device.send(answer);
      const open = await device.next();
      if (open.error) {
        failed++;
        continue;
      }
      times.push(open.open);
      paths.add(open.path);
    }
    device.send({ quit: true });
    agent.send({ quit: true });
    return { times, paths: [...paths], failed };
  } finally {
    for (const child of children) child.kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    removeLab(ns);
  }
}

if (NATLAB === undefined) {
  console.log('[mesh natlab] skipped: natlab.py not found');
} else {
  const fmt = (n) => n.toFixed(0);
  for (const mode of ['cone', 'symmetric']) {
    const { times, paths, failed } = await opensAcross(mode);
    if (times.length === 0) {
      console.log(`[mesh natlab] ${mode} NATs: no channel opened in ${OPENS} tries`);
      continue;
    }
    const [p50, p95] = [percentile(times, 50), percentile(times, 95)];
    console.log(
      `[mesh natlab] data channel open across two ${mode === 'cone' ? 'port-preserving' : 'symmetric'} NATs (path ${paths.join('/')}), ` +
        `${times.length} of ${OPENS}${failed ? ` (${failed} failed)` : ''}: p50 ${fmt(p50)} ms, p95 ${fmt(p95)} ms ` +
        `(T1 ≤ 1500 / 3000 ms: ${p50 <= 1500 && p95 <= 3000 ? 'met' : 'missed'})`,
    );
  }
}
