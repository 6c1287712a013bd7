#!/usr/bin/env node
// The WebRTC path end to end (issue 13, mesh.md T6 and T7), against the direct alternatives in the
// same run. Two agents on this machine in one account (../two-hosts.mjs): "near" on loopback
// (reached directly), "far" in a network namespace behind a firewall that lets nothing in but lets
// UDP out, so the core reaches it over WebRTC, hole-punched (`p2p`):
// - preview req/s: load.mjs (32 keep-alive connections, BENCH_PREVIEW_S seconds each, alternated,
//   medians) against far's small origin through its preview (over WebRTC) and straight to the same
//   origin over TCP inside its namespace; ratio and p99s (T7: ≥ 50% of direct req/s, p99 ≤ 2×);
//   beside them near's origin through its preview over the direct link (what the preview and the
//   mux cost without WebRTC) and through `ssh -L` to near's origin beside direct TCP to it (what a
//   user would pick instead, and what OpenSSH's forwarder reaches against direct TCP on this
//   machine: the same bar T7 sets; skipped, saying so, without sshd); CPU per request per process, per thread of the core and far agent
//   (the main thread against the WebRTC library's), and UDP datagrams per request on far's veth;
// - keystroke echo through `hangar attach` into `cat`: far (WebRTC) beside near (the direct link);
//   p50/p99 and the added p50 (T6: ≤ 5 ms added in a namespace).
// Needs root (ip netns). Not a test: it prints numbers; it fails only if it breaks.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HangarCore } from '@hangar/desktop/core';
import { freePort, percentile, startSshd, waitForPort } from '../support.mjs';
import { cpuSeconds, twoHosts } from '../two-hosts.mjs';

const SECONDS = Number(process.env.BENCH_PREVIEW_S ?? 5);
const ROUNDS = 3;
const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 200);
const LOAD = join(import.meta.dirname, 'load.mjs');
const run = promisify(execFile);

/** A small static asset (2 KiB), as a dev server serves its scripts. */
const ORIGIN = `const body = Buffer.alloc(2048, 120); require('http').createServer((q, s) => {
    s.writeHead(200, { 'content-type': 'text/javascript', 'content-length': String(body.length) }); s.end(body);
  }).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port) })`;

/** CPU seconds of each of a process's threads, summed by thread name (node's main thread is "node"). */
function threadCpu(pid) {
  const byName = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return byName;
}

/**
 * Seconds each of a process's threads spent runnable but waiting for a core (/proc schedstat's
 * second field), summed by thread name: where a loaded machine's scheduling delays a request.
 */
function threadWait(pid) {
  const byName = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const waited = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
      byName.set(name, (byName.get(name) ?? 0) + waited);
    } catch {
      // The thread ended meanwhile, or the kernel keeps no schedstat.
    }
  }
  return byName;
}

/** Packets through this machine's ends of the bench's veth pairs (hb…), both ways: the far agent's datagrams. */
function vethPackets() {
  let packets = 0;
  for (const line of readFileSync('/proc/net/dev', 'utf8').split('\n')) {
    const match = /^\s*(hb[^:]*):\s*(.*)$/.exec(line);
    if (!match) continue;
    const fields = match[2].trim().split(/\s+/).map(Number);
    packets += fields[1] + fields[9]; // received, sent
  }
  return packets;
}

async function load(prefix, port) {
  const [command, ...args] = [...prefix, process.execPath, LOAD, String(port), String(SECONDS), '32'];
  const { stdout } = await run(command, args);
  return JSON.parse(stdout.trim().split('\n').pop());
}

/**
 * `ssh -L` to `port` through a throwaway sshd on loopback (../support.mjs), or the reason it cannot
 * run. `stop` ends the tunnel and sshd.
 */
async function sshTunnel(dir, port) {
  const sshd = await startSshd(dir);
  if (sshd.reason) return { reason: sshd.reason };
  const local = await freePort();
  const tunnel = spawn('ssh', sshd.ssh(['-N', '-L', `127.0.0.1:${local}:127.0.0.1:${port}`]).slice(1), {
    stdio: 'ignore',
  });
  await waitForPort(local, 'ssh -L');
  return {
    port: local,
    stop: () => {
      tunnel.kill();
      sshd.stop();
    },
  };
}

const rows = [];
let core;
let ssh;
const sshDir = mkdtempSync(join(tmpdir(), 'hangar-bench-mesh-ssh-'));
const stack = await twoHosts({ name: 'mesh', origin: ORIGIN, udp: true });
try {
  const { via, origins, wrapper } = stack;
  if (via.far !== 'p2p') console.error(`[mesh paths] far is reached ${via.far}, not over WebRTC (p2p)`);

  core = await HangarCore.open({ home: stack.home });
  await core.previews.add('far', origins.far);
  const local = (await core.previews.open('far', origins.far)).local_port;
  // The same preview through the direct link (near, wss on loopback): what the preview and the mux
  // cost without WebRTC, so the WebRTC path's own share shows beside it.
  await core.previews.add('near', origins.near);
  const nearLocal = (await core.previews.open('near', origins.near)).local_port;
  ssh = await sshTunnel(sshDir, origins.near);
  const tunneled = [];
  const nearDirect = [];
  const linked = [];
  let linkedCore = 0;
  let linkedAgent = 0;
  const previewPath = core.existingConnection('far')?.path?.kind ?? 'direct';
  const through = [];
  const direct = [];
  // CPU each side spent per request through the preview (all threads: the WebRTC library's too),
  // a figure that a loaded machine skews far less than req/s.
  const cpu = { core: 0, agent: 0, origin: 0, directOrigin: 0 };
  const cpuNow = () => ({
    core: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    agent: cpuSeconds(stack.pids.far.agent),
    origin: cpuSeconds(stack.pids.far.origin),
  });
  // The same per thread name (the main thread against the WebRTC library's), core and far agent.
  const threads = { core: new Map(), agent: new Map() };
  const waits = { core: new Map(), agent: new Map(), linkedCore: new Map(), linkedAgent: new Map() };
  let packets = 0;
  const addThreads = (into, before, after) => {
    for (const [name, seconds] of after) into.set(name, (into.get(name) ?? 0) + seconds - (before.get(name) ?? 0));
  };
  for (let round = 0; round < ROUNDS; round++) {
    const before = cpuNow();
    const threadsBefore = { core: threadCpu(process.pid), agent: threadCpu(stack.pids.far.agent) };
    const waitsBefore = { core: threadWait(process.pid), agent: threadWait(stack.pids.far.agent) };
    const packetsBefore = vethPackets();
    through.push(await load([], local));
    packets += vethPackets() - packetsBefore;
    const after = cpuNow();
    addThreads(threads.core, threadsBefore.core, threadCpu(process.pid));
    addThreads(threads.agent, threadsBefore.agent, threadCpu(stack.pids.far.agent));
    addThreads(waits.core, waitsBefore.core, threadWait(process.pid));
    addThreads(waits.agent, waitsBefore.agent, threadWait(stack.pids.far.agent));
    for (const key of ['core', 'agent', 'origin']) cpu[key] += after[key] - before[key];
    const linkedBefore = { core: cpuNow().core, agent: cpuSeconds(stack.pids.near.agent) };
    const linkedWaitsBefore = { core: threadWait(process.pid), agent: threadWait(stack.pids.near.agent) };
    linked.push(await load([], nearLocal));
    linkedCore += cpuNow().core - linkedBefore.core;
    linkedAgent += cpuSeconds(stack.pids.near.agent) - linkedBefore.agent;
    addThreads(waits.linkedCore, linkedWaitsBefore.core, threadWait(process.pid));
    addThreads(waits.linkedAgent, linkedWaitsBefore.agent, threadWait(stack.pids.near.agent));
    const originBefore = cpuSeconds(stack.pids.far.origin);
    direct.push(await load(wrapper, origins.far));
    cpu.directOrigin += cpuSeconds(stack.pids.far.origin) - originBefore;
    if (ssh.port) {
      tunneled.push(await load([], ssh.port));
      nearDirect.push(await load([], origins.near));
    }
  }
  const requests = (runs) => runs.reduce((n, r) => n + r.requests, 0);
  const perRequest = (seconds, runs) => ((seconds * 1e6) / requests(runs)).toFixed(0);
  if (previewPath !== 'p2p') console.error(`[mesh paths] the preview ran ${previewPath}, not over WebRTC (p2p)`);
  const median = (runs, key) =>
    percentile(
      runs.map((r) => r[key]),
      50,
    );
  const failed = [...through, ...direct, ...linked, ...tunneled, ...nearDirect].reduce((n, r) => n + r.failed, 0);
  const [rtcRps, tcpRps] = [median(through, 'rps'), median(direct, 'rps')];
  const [rtcP99, tcpP99] = [median(through, 'p99'), median(direct, 'p99')];
  const list = (runs) => runs.map((r) => r.rps.toFixed(0)).join(', ');
  const [linkedRps, linkedP99] = [median(linked, 'rps'), median(linked, 'p99')];
  rows.push([
    `preview req/s, direct TCP to the origin (reference)`,
    `${tcpRps.toFixed(0)} (${list(direct)}), p99 ${tcpP99.toFixed(1)} ms`,
  ]);
  rows.push([
    `preview req/s, through the preview over WebRTC (${previewPath})`,
    `${rtcRps.toFixed(0)} (${list(through)}), p99 ${rtcP99.toFixed(1)} ms`,
  ]);
  rows.push([
    `preview req/s, through the preview over the direct link (near, wss; reference)`,
    `${linkedRps.toFixed(0)} (${list(linked)}), p99 ${linkedP99.toFixed(1)} ms; ${(linkedRps / tcpRps).toFixed(2)}× direct TCP; CPU µs per request core / agent ${perRequest(linkedCore, linked)} / ${perRequest(linkedAgent, linked)}`,
  ]);
  if (ssh.port) {
    const [sshRps, nearRps] = [median(tunneled, 'rps'), median(nearDirect, 'rps')];
    rows.push([
      `req/s through ssh -L to near's origin (reference: what a user would pick instead)`,
      `${sshRps.toFixed(0)} (${list(tunneled)}), p99 ${median(tunneled, 'p99').toFixed(1)} ms; ${(sshRps / nearRps).toFixed(2)}× direct TCP to it (${nearRps.toFixed(0)}); the preview over WebRTC ${(rtcRps / sshRps).toFixed(2)}× ssh -L, over the direct link ${(linkedRps / sshRps).toFixed(2)}×`,
    ]);
  } else rows.push([`req/s through ssh -L`, ssh.reason]);
  rows.push([
    'CPU µs per request through the preview: core / far agent / origin',
    `${perRequest(cpu.core, through)} / ${perRequest(cpu.agent, through)} / ${perRequest(cpu.origin, through)} (origin, direct: ${perRequest(cpu.directOrigin, direct)})`,
  ]);
  // Every process of a run shares this machine's cores, so once they are all busy req/s goes as
  // the inverse of the CPU a request costs end to end: the ratio of those costs is the req/s
  // ratio such a run reaches, whatever the load average.
  const loadCpu = (runs) => runs.reduce((n, r) => n + r.cpu_us, 0) / requests(runs);
  const rtcCpu = loadCpu(through) + (1e6 * (cpu.origin + cpu.core + cpu.agent)) / requests(through);
  const tcpCpu = loadCpu(direct) + (1e6 * cpu.directOrigin) / requests(direct);
  rows.push([
    'CPU µs per request end to end (load generator + origin + core + far agent)',
    `over WebRTC ${rtcCpu.toFixed(0)} (load generator ${loadCpu(through).toFixed(0)}), direct TCP ${tcpCpu.toFixed(0)} (load generator ${loadCpu(direct).toFixed(0)}): with the cores all busy about ${(tcpCpu / rtcCpu).toFixed(2)}× direct req/s`,
  ]);
  const byThread = (map, runs = through) =>
    [...map]
      .filter(([, seconds]) => seconds > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([name, seconds]) => `${name} ${perRequest(seconds, runs)}`)
      .join(', ');
  rows.push(['  by thread, core', byThread(threads.core)]);
  rows.push(['  UDP datagrams per request (both ways)', (packets / requests(through)).toFixed(2)]);
  rows.push(['  by thread, far agent', byThread(threads.agent)]);
  rows.push(['  µs per request each thread waited for a core, core', byThread(waits.core)]);
  rows.push(['  µs per request each thread waited for a core, far agent', byThread(waits.agent)]);
  rows.push([
    '  the same over the direct link (reference), core / near agent',
    `${byThread(waits.linkedCore, linked)} / ${byThread(waits.linkedAgent, linked)}`,
  ]);
  rows.push([
    'req/s ratio WebRTC / direct; p99 ratio',
    `${(rtcRps / tcpRps).toFixed(2)}× (T7 ≥ 0.5: ${rtcRps / tcpRps >= 0.5 ? 'met' : 'missed'}); ${(rtcP99 / tcpP99).toFixed(1)}× (T7 ≤ 2: ${rtcP99 / tcpP99 <= 2 ? 'met' : 'missed'})${failed ? `; ${failed} failed requests` : ''}; ` +
      `WebRTC / the direct link's preview ${(rtcRps / linkedRps).toFixed(2)}×`,
  ]);
  await core.dispose();
  core = undefined;

  const directEcho = await stack.keystrokes('near', KEYSTROKES);
  const rtcEcho = await stack.keystrokes('far', KEYSTROKES);
  const p = (samples, q) => percentile(samples, q).toFixed(2);
  rows.push(['keystroke echo p50 / p99, direct link (reference)', `${p(directEcho, 50)} / ${p(directEcho, 99)} ms`]);
  rows.push([`keystroke echo p50 / p99, over WebRTC (${via.far})`, `${p(rtcEcho, 50)} / ${p(rtcEcho, 99)} ms`]);
  const added = percentile(rtcEcho, 50) - percentile(directEcho, 50);
  rows.push([
    'echo p50 ratio WebRTC / direct (added)',
    `${(percentile(rtcEcho, 50) / percentile(directEcho, 50)).toFixed(2)}× (+${added.toFixed(2)} ms; T6 ≤ 5 ms: ${added <= 5 ? 'met' : 'missed'})`,
  ]);
  rows.push(['paths as hangar hosts ls shows them', `near: ${via.near}, far: ${via.far}`]);
} finally {
  ssh?.stop?.();
  await core?.dispose();
  await stack.dispose();
  rmSync(sshDir, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log('\n[mesh] The WebRTC path vs direct, end to end, this machine, same run:');
for (const [name, value] of rows) console.log(`  ${name.padEnd(width)}  ${value}`);
