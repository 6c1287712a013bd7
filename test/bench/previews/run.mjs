#!/usr/bin/env node
// Previews benchmark: a static asset under load (wrk -c32), a big download, WebSocket round trips
// and a fresh connection's first byte, each direct to the origin and through a Hangar preview
// (agent process on loopback, the core's forwarder in this process), and through `ssh -L` when
// sshd is installed: the tool a preview replaces. Then a WebSocket left idle for BENCH_IDLE_S.
// Not a test: it prints numbers, the references measured in the same run, and the targets
// (../shared/research/mesh.md T7/T8; issue 16: at least ssh -L's req/s and download, at most its
// CPU, and small-message echo barely moved while a big download shares the link). Needs wrk and nginx (Debian: apt-get install wrk nginx);
// ssh -L is measured when openssh-server is installed (run as root: it starts its own sshd).
// Hangar's row is previews over lanes (a TCP connection per browser connection, relayed natively:
// lane/PROTOCOL.md) when the native relay loads here; the same preview over the link's mux streams
// (HANGAR_LANES=off, switched for those measurements only) is a row of its own in the same run.
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { HangarCore } from '@hangar/desktop/core';
import { loadNativeLanes } from '@hangar/lane';
import { WebSocket } from 'ws';
import {
  AGENT,
  cpuMs,
  freePort,
  HANGAR,
  loadAverage,
  percentile,
  requirePrograms,
  rssKiB,
  runCleanups,
  sleep,
  startAgent,
  startSshd as startSshdIn,
  waitForPort,
} from '../support.mjs';

const WRK_SECONDS = Number(process.env.BENCH_WRK_S ?? 10);
const DOWNLOAD_MB = Number(process.env.BENCH_DOWNLOAD_MB ?? 256);
/** The download that runs beside the echo round trips (the issue's 1 GiB; sparse, so no disk). */
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 1024);
const WS_ROUND_TRIPS = Number(process.env.BENCH_WS_TRIPS ?? 2000);
const FRESH_CONNECTIONS = Number(process.env.BENCH_FRESH ?? 200);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const ASSET_BYTES = 4096;
// BENCH_ONLY=wrk,download runs a subset (names: wrk, download, echo, ws, fresh, idle).
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (name) => only === undefined || only.includes(name);

requirePrograms({ nginx: 'nginx', ...(wanted('wrk') ? { wrk: 'wrk' } : {}) });
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-previews-')));
const home = join(dir, 'home');
const env = { ...process.env, HANGAR_HOME: home };
const cleanups = [];
const rows = [];
const row = (metric, measured, reference, target, ok) => rows.push({ metric, measured, reference, target, ok });

/** Lanes here: the native relay loads and HANGAR_LANES is not off (then the mux rows repeat the first). */
const native = loadNativeLanes();
const lanes =
  'unavailable' in native
    ? `no (${native.unavailable})`
    : process.env.HANGAR_LANES?.trim().toLowerCase() === 'off'
      ? 'no (HANGAR_LANES=off)'
      : 'yes';
/** Runs `measure` with this process's previews on the link's mux (the forwarder reads HANGAR_LANES per connection). */
async function overMux(measure) {
  const before = process.env.HANGAR_LANES;
  process.env.HANGAR_LANES = 'off';
  try {
    return await measure();
  } finally {
    if (before === undefined) delete process.env.HANGAR_LANES;
    else process.env.HANGAR_LANES = before;
  }
}

/** nginx serving one static asset and the big download, as a production-grade origin. */
async function startNginx() {
  const root = join(dir, 'www');
  mkdirSync(root, { recursive: true });
  // nginx's workers drop root for nobody: they must be able to read the files.
  chmodSync(dir, 0o755);
  writeFileSync(join(root, 'asset.js'), 'x'.repeat(ASSET_BYTES));
  execFileSync('dd', ['if=/dev/zero', `of=${join(root, 'big.bin')}`, 'bs=1M', `count=${DOWNLOAD_MB}`], {
    stdio: 'ignore',
  });
  execFileSync('truncate', ['-s', `${BIG_MB}M`, join(root, 'huge.bin')]);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_requests 1000000;
  client_body_temp_path ${dir}/nb; proxy_temp_path ${dir}/np; fastcgi_temp_path ${dir}/nf; uwsgi_temp_path ${dir}/nu; scgi_temp_path ${dir}/ns;
  server { listen 127.0.0.1:${port}; root ${root}; } }\n`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'inherit' });
  cleanups.push(() => child.kill());
  await waitForPort(port, 'nginx');
  return port;
}

/** A Node origin like a dev server (origin.mjs), in its own process. */
async function startNodeOrigin() {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'origin.mjs'), String(ASSET_BYTES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => child.kill());
  return new Promise((resolve) =>
    createInterface({ input: child.stdout }).once('line', (line) => resolve(Number(line))),
  );
}

/**
 * A throwaway sshd on loopback, and `ssh -L` tunnels through it: the tool a preview replaces.
 * Undefined when openssh-server is not installed or we are not root (sshd must read its keys as root).
 */
async function startSshd() {
  const sshd = await startSshdIn(dir);
  if (sshd.reason) return undefined; // the ssh -L column stays empty
  cleanups.push(sshd.stop);
  return async (targetPort) => {
    const localPort = await freePort();
    const tunnel = spawn('ssh', sshd.ssh(['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`]).slice(1), {
      stdio: 'ignore',
    });
    cleanups.push(() => tunnel.kill());
    await waitForPort(localPort, 'ssh -L');
    return { port: localPort, pids: [tunnel.pid, sshd.pid] };
  };
}

/** A process and its descendants (sshd forks one per connection). */
function withDescendants(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // the process ended while we looked
    }
  }
  const all = [];
  const walk = (p) => {
    all.push(p);
    for (const child of children.get(p) ?? []) walk(child);
  };
  walk(pid);
  return all;
}

/** wrk runs in its own process; never block on it: the preview's forwarder is this process. */
async function wrk(port, path, forwarders = []) {
  const pids = forwarders.flatMap((pid) => (pid === 'self' ? ['self'] : withDescendants(pid)));
  const cpuBefore = pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const { stdout: out } = await promisify(execFile)(
    'wrk',
    [
      '-t2',
      '-c32',
      `-d${WRK_SECONDS}s`,
      '--latency',
      '-H',
      `Host: localhost:${port}`,
      `http://127.0.0.1:${port}${path}`,
    ],
    { encoding: 'utf8' },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const scale = { us: 0.001, ms: 1, s: 1000 }[p99[2]];
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const cpu = pids.reduce((sum, pid) => sum + cpuMs(pid), 0) - cpuBefore;
  return { rps, p99: Number(p99[1]) * scale, errors: Number(errors), cpuPerRequestUs: (cpu * 1000) / requests };
}

/**
 * One download by curl, in its own process like a browser: the forwarder's CPU is then the
 * forwarder's alone (a client in this process would add its own to the core's).
 */
async function download(port, forwarders = [], path = '/big.bin') {
  const pids = forwarders.flatMap((pid) => (pid === 'self' ? ['self'] : withDescendants(pid)));
  const cpuBefore = pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const { stdout } = await promisify(execFile)(
    'curl',
    [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download} %{time_total}',
      '-H',
      `Host: localhost:${port}`,
      `http://127.0.0.1:${port}${path}`,
    ],
    { encoding: 'utf8' },
  );
  const [status, bytes, seconds] = stdout.trim().split(' ').map(Number);
  const cpu = pids.reduce((sum, pid) => sum + cpuMs(pid), 0) - cpuBefore;
  return { status, bytes, mbps: bytes / 1e6 / seconds, cpuMsPerMB: cpu / (bytes / 1e6) };
}

async function wsRoundTrips(port, count = WS_ROUND_TRIPS) {
  const socket = new WebSocket(`ws://localhost:${port}/hmr`);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const times = [];
  for (let i = 0; i < count; i++) {
    const began = performance.now();
    await new Promise((resolve) => {
      socket.once('message', resolve);
      socket.send('{"type":"update","path":"/src/App.tsx"}');
    });
    times.push(performance.now() - began);
  }
  socket.terminate();
  return { p50: percentile(times, 50), p99: percentile(times, 99), times };
}

/** A new TCP connection, one request, first byte of the answer: what each module import of a cold page pays. */
async function freshConnections(port) {
  const times = [];
  for (let i = 0; i < FRESH_CONNECTIONS; i++) {
    const began = performance.now();
    await new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/asset.js', agent: false, headers: { host: `localhost:${port}` } },
        (res) => {
          times.push(performance.now() - began);
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

const fmt = (n, digits = 0) => n.toFixed(digits);

try {
  const agentData = join(dir, 'agent');
  const agent = await startAgent({ data: agentData, env });
  cleanups.push(() => agent.child.kill());
  const { code } = JSON.parse(
    execFileSync(process.execPath, [AGENT, 'pair', '--data', agentData, '--json'], { encoding: 'utf8' }),
  );
  execFileSync(process.execPath, [HANGAR, 'hosts', 'add', 'bench', agent.address, '--code', code], { env });
  const core = await HangarCore.open({ home });
  cleanups.push(() => core.dispose());

  const nginx = await startNginx();
  const node = await startNodeOrigin();
  const opened = {};
  for (const [name, port] of [
    ['nginx', nginx],
    ['node', node],
  ]) {
    await core.previews.add('bench', port);
    opened[name] = (await core.previews.open('bench', port)).local_port;
  }
  // Every path answers 200 before anything is timed: a benchmark of error pages measures nothing.
  for (const port of [nginx, opened.nginx]) {
    for (const path of ['/asset.js', '/big.bin']) {
      const answer = await new Promise((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path, method: 'HEAD', headers: { host: `localhost:${port}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode);
          },
        );
        req.on('error', reject);
        req.end();
      });
      if (answer !== 200) throw new Error(`HEAD ${path} on port ${port} answered ${answer}`);
    }
  }
  const tunnelTo = await startSshd();
  const ssh = tunnelTo ? { nginx: await tunnelTo(nginx), node: await tunnelTo(node) } : {};

  // The issue's targets (issue 16): what a user would pick instead of a preview is `ssh -L`, so
  // req/s, download and forwarding CPU are held against it, measured in the same run; without
  // sshd the ssh column stays empty and those targets read '-'.
  const vsSsh = (ours, theirs) => (theirs === undefined ? '' : ` (${fmt(ours / theirs, 2)}× ssh -L)`);
  const meets = (ok) => (ok === undefined ? '-' : ok);
  row('previews over lanes', lanes, '-', '-', '-');
  for (const origin of wanted('wrk') ? ['nginx', 'node'] : []) {
    const direct = await wrk(origin === 'nginx' ? nginx : node, '/asset.js');
    // Lanes and mux alternated (two rounds each, the better of each kept), so a neighbour's burst
    // on this shared machine does not land on one of them only.
    const laneRuns = [];
    const muxRuns = [];
    for (let round = 0; round < 2; round++) {
      laneRuns.push(await wrk(opened[origin], '/asset.js', [agent.child.pid, 'self']));
      muxRuns.push(await overMux(() => wrk(opened[origin], '/asset.js', [agent.child.pid, 'self'])));
    }
    const best = (runs) => runs.reduce((a, b) => (b.rps > a.rps ? b : a));
    const preview = best(laneRuns);
    const mux = best(muxRuns);
    const tunnel = ssh[origin] ? await wrk(ssh[origin].port, '/asset.js', ssh[origin].pids) : undefined;
    row(
      `static ${ASSET_BYTES / 1024} KiB asset, wrk -c32 ${WRK_SECONDS}s (${origin}): req/s`,
      `${fmt(preview.rps)}${vsSsh(preview.rps, tunnel?.rps)}, ${fmt((preview.rps / direct.rps) * 100)}% of direct` +
        (preview.errors ? ` ${preview.errors} errors` : ''),
      `direct ${fmt(direct.rps)}${tunnel ? `; ssh -L ${fmt(tunnel.rps)} (${fmt((tunnel.rps / direct.rps) * 100)}%)` : ''}`,
      '≥ 1.0× ssh -L',
      meets(tunnel && preview.rps >= tunnel.rps),
    );
    row(
      `  … forwarding CPU per request (${origin})`,
      `${fmt(preview.cpuPerRequestUs)} µs (agent + core)${vsSsh(preview.cpuPerRequestUs, tunnel?.cpuPerRequestUs)}`,
      tunnel ? `ssh -L ${fmt(tunnel.cpuPerRequestUs)} µs (ssh + sshd)` : '-',
      '≤ 1.0× ssh -L',
      meets(tunnel && preview.cpuPerRequestUs <= tunnel.cpuPerRequestUs),
    );
    row(
      `  … p99 latency (${origin})`,
      `${fmt(preview.p99, 2)} ms (${fmt(preview.p99 / direct.p99, 1)}× direct)`,
      `direct ${fmt(direct.p99, 2)} ms${tunnel ? `; ssh -L ${fmt(tunnel.p99, 2)} ms` : ''}`,
      '≤ 2× direct',
      preview.p99 <= 2 * direct.p99,
    );
    row(
      `  … over the link's mux, HANGAR_LANES=off (${origin})`,
      `${fmt(mux.rps)} req/s${vsSsh(mux.rps, tunnel?.rps)}, ${fmt(mux.cpuPerRequestUs)} µs/request, p99 ${fmt(mux.p99, 2)} ms` +
        (mux.errors ? ` ${mux.errors} errors` : ''),
      `lanes ${fmt(preview.rps)} req/s, ${fmt(preview.cpuPerRequestUs)} µs/request`,
      '-',
      '-',
    );
  }

  if (wanted('download')) {
    // Alternated, so a neighbour's burst on this shared machine does not land on one column only.
    const runs = { direct: [], preview: [], mux: [], ssh: [] };
    for (let i = 0; i < 3; i++) {
      runs.direct.push(await download(nginx));
      runs.preview.push(await download(opened.nginx, [agent.child.pid, 'self']));
      runs.mux.push(await overMux(() => download(opened.nginx, [agent.child.pid, 'self'])));
      if (ssh.nginx) runs.ssh.push(await download(ssh.nginx.port, ssh.nginx.pids));
    }
    const mid = (list, key) =>
      percentile(
        list.map((r) => r[key]),
        50,
      );
    const directMbps = mid(runs.direct, 'mbps');
    const previewMbps = mid(runs.preview, 'mbps');
    const sshMbps = ssh.nginx ? mid(runs.ssh, 'mbps') : undefined;
    const previewCpu = mid(runs.preview, 'cpuMsPerMB');
    const sshCpu = ssh.nginx ? mid(runs.ssh, 'cpuMsPerMB') : undefined;
    row(
      `${DOWNLOAD_MB} MB download (nginx), median of 3`,
      `${fmt(previewMbps)} MB/s${vsSsh(previewMbps, sshMbps)}, ${fmt((previewMbps / directMbps) * 100)}% of direct`,
      `direct ${fmt(directMbps)} MB/s${sshMbps ? `; ssh -L ${fmt(sshMbps)} MB/s` : ''}`,
      '≥ 1.0× ssh -L',
      meets(sshMbps && previewMbps >= sshMbps),
    );
    row(
      '  … forwarding CPU per MB',
      `${fmt(previewCpu, 2)} ms (agent + core)${vsSsh(previewCpu, sshCpu)}`,
      sshCpu !== undefined ? `ssh -L ${fmt(sshCpu, 2)} ms (ssh + sshd)` : '-',
      '≤ 1.0× ssh -L',
      meets(sshCpu !== undefined && previewCpu <= sshCpu),
    );
    row(
      "  … over the link's mux, HANGAR_LANES=off",
      `${fmt(mid(runs.mux, 'mbps'))} MB/s${vsSsh(mid(runs.mux, 'mbps'), sshMbps)}, ${fmt(mid(runs.mux, 'cpuMsPerMB'), 2)} ms CPU per MB`,
      `lanes ${fmt(previewMbps)} MB/s`,
      '-',
      '-',
    );
  }

  if (wanted('echo')) {
    // Bulk must not starve interactive streams: small-message round trips on one preview
    // connection (the HMR socket; a keystroke's echo crosses the link the same way) with the
    // link idle, then while a BENCH_BIG_MB download runs through the same link.
    // Beside them, the link's own round trip (a ping: priority frames, ahead of every queue of
    // ours): what the sockets, the peer's event loop and the machine add, not the scheduler.
    const mux = await core.connection('bench').link();
    const pings = async (count) => {
      const times = [];
      for (let i = 0; i < count; i++) {
        const began = performance.now();
        await mux.ping();
        times.push(performance.now() - began);
      }
      return times;
    };
    const quiet = await wsRoundTrips(opened.node);
    const quietPings = await pings(200);
    const big = download(opened.nginx, [], '/huge.bin');
    const loaded = [];
    const loadedPings = [];
    for (let done = false; !done;) {
      const trips = await wsRoundTrips(opened.node, 200);
      loaded.push(...trips.times);
      loadedPings.push(...(await pings(20)));
      done = await Promise.race([big.then(() => true), sleep(0).then(() => false)]);
    }
    const bulk = await big;
    const busy = { p50: percentile(loaded, 50), p99: percentile(loaded, 99) };
    const fmtPings = (times) => `${fmt(percentile(times, 50), 2)} / ${fmt(percentile(times, 99), 2)} ms`;
    const added50 = Math.max(0, busy.p50 - quiet.p50);
    const added99 = Math.max(0, busy.p99 - quiet.p99);
    row(
      `echo added while a ${BIG_MB} MB download runs on the same link, p50 / p99`,
      `${fmt(added50, 2)} / ${fmt(added99, 2)} ms (${loaded.length} round trips; download ${fmt(bulk.mbps)} MB/s)`,
      `idle link ${fmt(quiet.p50, 2)} / ${fmt(quiet.p99, 2)} ms`,
      '≤ 1 / ≤ 5 ms',
      added50 <= 1 && added99 <= 5,
    );
    row(
      '  … link ping p50 / p99 (priority frames, no stream queue)',
      `${fmtPings(loadedPings)} during the download`,
      `idle link ${fmtPings(quietPings)}`,
      '-',
      '-',
    );
  }

  /** One row: `measure` (p50 and p99 ms) through the preview, straight to the dev server, and over ssh -L when sshd runs. */
  const besideDirectAndSsh = async (metric, measure) => {
    const direct = await measure(node);
    const preview = await measure(opened.node);
    const overSsh = ssh.node ? await measure(ssh.node.port) : undefined;
    const pair = (figures) => `${fmt(figures.p50, 2)} / ${fmt(figures.p99, 2)} ms`;
    row(metric, pair(preview), `direct ${pair(direct)}${overSsh ? `; ssh -L ${pair(overSsh)}` : ''}`, '-', '-');
  };
  if (wanted('ws')) {
    await besideDirectAndSsh(`WebSocket round trip p50 / p99 (${WS_ROUND_TRIPS} HMR-sized messages)`, wsRoundTrips);
  }
  if (wanted('fresh')) await besideDirectAndSsh('new connection → first byte p50 / p99', freshConnections);

  if (wanted('idle')) {
    // T8: the HMR socket must outlive an idle stretch (tailscale serve drops WS after 10-40 s).
    const idle = new WebSocket(`ws://localhost:${opened.node}/hmr`);
    await new Promise((resolve, reject) => {
      idle.once('open', resolve);
      idle.once('error', reject);
    });
    let closedAt;
    idle.once('close', (code) => (closedAt = code));
    await sleep(IDLE_S * 1000);
    const alive =
      closedAt === undefined &&
      (await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        idle.once('message', () => {
          clearTimeout(timer);
          resolve(true);
        });
        idle.send('still there?');
      }));
    idle.terminate();
    row(
      `HMR WebSocket idle ${IDLE_S} s (BENCH_IDLE_S=900 for the 15 min target)`,
      alive ? 'still open, answers' : `closed (${closedAt ?? 'no answer'})`,
      '-',
      'open after 15 min',
      alive,
    );
  }
  row('load average (1 min) at the end', loadAverage(), '-', '-', '-');
  row('agent RSS after the run', `${fmt(rssKiB(agent.child.pid) / 1024, 1)} MB`, '-', '-', '-');
} finally {
  await runCleanups(cleanups);
  rmSync(dir, { recursive: true, force: true });
}

const widths = ['metric', 'measured', 'reference', 'target'].map((key) =>
  Math.max(key.length, ...rows.map((r) => String(r[key]).length)),
);
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i] ?? 0)).join('  ');
process.stdout.write(line(['metric', 'measured', 'reference', 'target', 'met']) + '\n');
for (const r of rows) {
  process.stdout.write(
    line([r.metric, r.measured, r.reference, r.target, r.ok === '-' ? '-' : r.ok ? 'yes' : 'NO']) + '\n',
  );
}
