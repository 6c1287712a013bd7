#!/usr/bin/env node
// Relayed-path benchmark (issue 13's UDP-blocked fallback): a 256 MiB download through a preview
// and keystroke echo, each through a relay splice and through the direct link in the same run,
// with the ratio. Two agents on this machine in one account: "near" on loopback (reached
// directly), "far" in a network namespace behind a firewall that lets nothing in (reached only
// through the relay). Needs root (ip netns). Not a test: it prints numbers; it fails only if it breaks.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import pty from 'node-pty';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';
import { HangarCore } from '@hangar/desktop/core';
import { AGENT, HANGAR, ROOT, percentile, sleep } from '../support.mjs';

const DOWNLOAD_MIB = Number(process.env.BENCH_MIB ?? 256);
const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 300);
const RELAY = join(ROOT, 'relay', 'bin', 'hangar-relay.js');

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-splice-')));
const home = join(dir, 'laptop');
const env = { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'warn' };
delete env.TMUX;
const run = promisify(execFile);
const children = [];

// ---- a firewalled namespace for "far" (as test/support/firewalled-host.ts) ----
const id = randomBytes(3).toString('hex');
const ns = `hgbench-${id}`;
const outside = `hbo${id}`;
const inside = `hbi${id}`;
const net = `10.${100 + (parseInt(id.slice(0, 2), 16) % 100)}.${parseInt(id.slice(2, 4), 16)}`;
const wrapper = ['ip', 'netns', 'exec', ns];
function makeNamespace() {
  const steps = [
    ['ip', 'netns', 'add', ns],
    ['ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside],
    ['ip', 'link', 'set', inside, 'netns', ns],
    ['ip', 'addr', 'add', `${net}.1/30`, 'dev', outside],
    ['ip', 'link', 'set', outside, 'up'],
    ['ip', '-n', ns, 'addr', 'add', `${net}.2/30`, 'dev', inside],
    ['ip', '-n', ns, 'link', 'set', inside, 'up'],
    ['ip', '-n', ns, 'link', 'set', 'lo', 'up'],
    [
      ...wrapper,
      'iptables',
      '-A',
      'INPUT',
      '-i',
      inside,
      '-m',
      'conntrack',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'ACCEPT',
    ],
    [...wrapper, 'iptables', '-A', 'INPUT', '-i', inside, '-j', 'DROP'],
  ];
  for (const [command, ...args] of steps) execFileSync(command, args);
}

/** A process whose first stdout line matching `pattern` is what we wait for. */
function started(argv, pattern, extraEnv = {}) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...extraEnv } });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not start`)), 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = pattern.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
}

function startAgentIn(data, prefix) {
  return started(
    [...prefix, process.execPath, ...AGENT_NODE_FLAGS, AGENT, 'serve', '--listen', '127.0.0.1:0', '--data', data],
    /"address":"([^"]+)"/,
    AGENT_ENV,
  );
}

/** An HTTP server answering DOWNLOAD_MIB MiB on any request, in the given namespace (or here). */
function startOrigin(prefix) {
  const source = `const chunk = Buffer.alloc(65536, 120); require('http').createServer((q, s) => {
    s.writeHead(200, { 'content-length': String(${DOWNLOAD_MIB} * 1048576) });
    let left = ${DOWNLOAD_MIB} * 16;
    const pump = () => { while (left > 0) { left--; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
    pump();
  }).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port) })`;
  return started([...prefix, process.execPath, '-e', source], /^port (\d+)$/).then(Number);
}

async function download(port) {
  const t0 = performance.now();
  const response = await fetch(`http://localhost:${port}/`);
  let bytes = 0;
  for await (const chunk of response.body) bytes += chunk.length;
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== DOWNLOAD_MIB * 1048576) throw new Error(`downloaded ${bytes} bytes`);
  return DOWNLOAD_MIB / seconds;
}

/** `hangar attach` in a pty, typing into `cat` one byte at a time and timing each echo. */
async function keystrokes(host) {
  const proc = pty.spawn(process.execPath, [HANGAR, 'attach', host, 'echo'], {
    name: 'xterm-256color',
    cols: 120,
    rows: 40,
    env,
  });
  let seen = '';
  let waiter;
  let painted;
  const firstPaint = new Promise((resolve) => (painted = resolve));
  proc.onData((chunk) => {
    painted();
    seen = (seen + chunk).slice(-4096);
    if (waiter && seen.includes(waiter.needle)) {
      const w = waiter;
      waiter = undefined;
      seen = '';
      w.resolve(performance.now());
    }
  });
  const waitFor = (needle) => new Promise((resolve) => (waiter = { needle, resolve }));
  // Typing counts once the session's screen is up (raw mode is on by then).
  await firstPaint;
  await sleep(500);
  const samples = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < KEYSTROKES * 2; i++) {
    if (i % 50 === 49) {
      seen = '';
      const done = waitFor('\n');
      proc.write('\r');
      await done;
    }
    const key = letters[i % letters.length];
    seen = '';
    const echoed = waitFor(key);
    const t0 = performance.now();
    proc.write(key);
    const t1 = await echoed;
    if (i >= KEYSTROKES) samples.push(t1 - t0); // the first half warms up
  }
  proc.kill();
  await sleep(300);
  return samples;
}

const rows = [];
let core;
try {
  makeNamespace();
  const relayUrl = await started(
    [
      process.execPath,
      RELAY,
      'serve',
      '--listen',
      `${net}.1:0`,
      '--data',
      join(dir, 'relay'),
      '--password-hash-cost',
      '10',
      '--rate-limit-scale',
      '100',
      // The path's own speed, not the per-account limit (default 8 MiB/s).
      '--splice-rate',
      String(2 ** 40),
    ],
    /"url":"([^"]+)"/,
  );
  const signup = spawn(
    process.execPath,
    [
      HANGAR,
      'signup',
      '--relay',
      relayUrl,
      '--email',
      'bench@example.com',
      '--password-stdin',
      '--device-name',
      'bench',
    ],
    { env, stdio: ['pipe', 'ignore', 'inherit'] },
  );
  signup.stdin.end('correct horse battery staple\n');
  await new Promise((resolve) => signup.once('exit', resolve));

  const origins = {};
  for (const [name, prefix] of [
    ['near', []],
    ['far', wrapper],
  ]) {
    const data = join(dir, name);
    execFileSync('mkdir', ['-p', data]);
    await startAgentIn(data, prefix);
    const line = (await run(process.execPath, [HANGAR, 'hosts', 'enroll-token', '--name', name], { env })).stdout;
    const token = /--token (\S+)/.exec(line)[1];
    await run(process.execPath, [AGENT, 'enroll', '--data', data, '--name', name, '--token', token], { env });
    origins[name] = await startOrigin(prefix);
  }
  // Online on the relay, then the first link (pairs with the line's secret), and a `cat` to type into.
  for (const name of ['near', 'far']) {
    for (let tries = 0; ; tries++) {
      const listed = JSON.parse((await run(process.execPath, [HANGAR, 'hosts', 'ls', '--json'], { env })).stdout);
      if (listed.find((h) => h.name === name)?.account?.presence === 'online') break;
      if (tries > 100) throw new Error(`${name} never came online`);
      await sleep(200);
    }
    await run(process.execPath, [HANGAR, 'session', 'new', name, '--name', 'echo', '--', 'cat'], { env });
  }
  const listed = JSON.parse((await run(process.execPath, [HANGAR, 'hosts', 'ls', '--json'], { env })).stdout);
  const via = Object.fromEntries(listed.map((h) => [h.name, h.via]));
  console.error(`paths: near ${via.near}, far ${via.far}`);

  core = await HangarCore.open({ home });
  const local = {};
  for (const name of ['near', 'far']) {
    await core.previews.add(name, origins[name]);
    local[name] = (await core.previews.open(name, origins[name])).local_port;
  }
  // Alternate the two (2 shared cores are noisy); medians.
  const rates = { near: [], far: [] };
  for (let round = 0; round < 3; round++) {
    for (const name of ['near', 'far']) rates[name].push(await download(local[name]));
  }
  const near = percentile(rates.near, 50);
  const far = percentile(rates.far, 50);
  const list = (values) => values.map((v) => v.toFixed(0)).join(', ');
  rows.push([
    `${DOWNLOAD_MIB} MiB preview download, direct link (reference)`,
    `${near.toFixed(0)} MiB/s (${list(rates.near)})`,
  ]);
  rows.push([`${DOWNLOAD_MIB} MiB preview download, relayed (splice)`, `${far.toFixed(0)} MiB/s (${list(rates.far)})`]);
  rows.push(['download ratio relayed / direct', `${(far / near).toFixed(2)}×`]);
  await core.dispose();
  core = undefined;

  const directEcho = await keystrokes('near');
  const relayedEcho = await keystrokes('far');
  const p = (samples, q) => percentile(samples, q).toFixed(2);
  rows.push(['keystroke echo p50 / p99, direct link (reference)', `${p(directEcho, 50)} / ${p(directEcho, 99)} ms`]);
  rows.push(['keystroke echo p50 / p99, relayed (splice)', `${p(relayedEcho, 50)} / ${p(relayedEcho, 99)} ms`]);
  rows.push([
    'echo p50 ratio relayed / direct (added)',
    `${(percentile(relayedEcho, 50) / percentile(directEcho, 50)).toFixed(2)}× (+${(percentile(relayedEcho, 50) - percentile(directEcho, 50)).toFixed(2)} ms)`,
  ]);
  rows.push(['paths as hangar hosts ls shows them', `near: ${via.near}, far: ${via.far}`]);
} finally {
  await core?.dispose();
  for (const child of children) child.kill();
  await sleep(500);
  // Each agent's own tmux server (its socket is named after its data dir), then the namespace:
  // deleting it deletes its veth end, and with it the pair. Either may already be gone.
  for (const name of ['near', 'far']) {
    const socket = `hangar-${createHash('sha256').update(join(dir, name)).digest('hex').slice(0, 12)}`;
    spawnSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  }
  spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'delete', outside], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log('\nRelayed path (splice) vs direct link, this machine, same run:');
for (const [name, value] of rows) console.log(`  ${name.padEnd(width)}  ${value}`);
