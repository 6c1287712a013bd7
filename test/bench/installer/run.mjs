// Benchmark: the install line and the update's downtime (issue 14).
//
// Per run, in a fresh temp HOME with systemd stood in for (test/fixtures/systemd: it runs the units
// for real), a loopback npm registry (test/fixtures/npm-registry, with better-sqlite3's prebuilt
// binary mirrored as GitHub serves it to users) and a real relay on loopback (SQLite) with one
// account, whose presence a device socket watches as the app's "Enroll a host" dialog does:
//   install line: `curl -fsSL <relay>/install.sh | sh -s -- --user --token hgr1_… …` started →
//     the first TLS handshake with the agent (a poller tries every 25 ms), → the host online on the
//     relay (the device socket's presence event), and → the script's exit;
//   update downtime: during `hangar-agent update`, the last handshake before the agent went away →
//     the first one after it came back (a poller every 10 ms), the host offline → online again on
//     the relay as the device saw it, and the update's wall time.
// Reference, measured in the same run: a bare `hangar-agent serve` from this checkout, enrolled
// with `hangar-agent enroll` first, cold start to first handshake and to online on the relay, and
// a bare restart (SIGTERM → new process answering).
//
//   npm run bench:installer            BENCH_RUNS=5 for more runs
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { AGENT_ENV, AGENT_NODE_FLAGS, tmuxSocketNameOf } from '@hangar/shared';
import { betterSqlitePrebuild, startRegistry } from '../../fixtures/npm-registry/registry.mjs';
import { killEverything } from '../../fixtures/service-manager/jobs.mjs';
import { INSTALL_SH, installEnv, publishAgent, ROOT } from '../../support/agent-releases.mjs';
import { AGENT, freePort, percentile } from '../support.mjs';
import { startRelayAccount } from './relay-account.mjs';

const exec = promisify(execFile);
const s = (value) => `${(value / 1000).toFixed(2)} s`;
const ms = (value) => `${Math.round(value)} ms`;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const work = mkdtempSync(join(tmpdir(), 'hangar-bench-installer-'));

const registry = await startRegistry({ prebuilds: betterSqlitePrebuild(ROOT) });
const relay = await startRelayAccount(join(work, 'relay'));
try {
  process.stdout.write(`publishing hangar-agent 0.1.0 and 0.2.0 to ${registry.url}; relay at ${relay.url} …\n`);
  await publishAgent(registry, join(work, 'publish'), '0.1.0');
  await publishAgent(registry, join(work, 'publish'), '0.2.0');
  registry.tag('hangar-agent', 'latest', '0.1.0');

  const reference = { start: [], online: [], restart: [] };
  const measured = { answering: [], online: [], scriptDone: [], downtime: [], relayGap: [], updateWall: [] };
  for (let run = 1; run <= RUNS; run++) {
    const bare = await bareAgent(join(work, `bare-${run}`));
    reference.start.push(bare.startMs);
    reference.online.push(bare.onlineMs);
    reference.restart.push(bare.restartMs);
    const result = await installAndUpdate(join(work, `run-${run}`));
    Object.entries(result).forEach(([key, value]) => value !== undefined && measured[key].push(value));
    process.stdout.write(
      `run ${run}: install line → answering ${s(result.answering)}, → online on the relay ${s(result.online)} ` +
        `(script done ${s(result.scriptDone)}); update downtime ${ms(result.downtime)}, offline on the relay ` +
        `${result.relayGap === undefined ? 'not seen' : ms(result.relayGap)} (update took ${s(result.updateWall)}); ` +
        `reference: bare cold start ${ms(bare.startMs)}, → online ${ms(bare.onlineMs)}, bare restart ${ms(bare.restartMs)}\n`,
    );
  }
  const median = (values) => percentile(values, 50);
  const times = (value, ref) => `${(value / ref).toFixed(1)}×`;
  process.stdout.write(
    `\nmedian of ${RUNS}:\n` +
      `  install line → agent answering      ${s(median(measured.answering))}  ` +
      `(${times(median(measured.answering), median(reference.start))} a bare cold start, ${ms(median(reference.start))})\n` +
      `  install line → online on the relay  ${s(median(measured.online))}  ` +
      `(${times(median(measured.online), median(reference.online))} a bare enrolled cold start → online, ${ms(median(reference.online))})\n` +
      `  update downtime (link gone → back)  ${ms(median(measured.downtime))}  ` +
      `(${times(median(measured.downtime), median(reference.restart))} a bare restart, ${ms(median(reference.restart))})\n` +
      (measured.relayGap.length > 0
        ? `  update: offline on the relay for    ${ms(median(measured.relayGap))} (as the device saw it)\n`
        : '  update: the device never saw the host offline\n') +
      `  update wall time                    ${s(median(measured.updateWall))}\n`,
  );
} finally {
  await relay.stop();
  await registry[Symbol.asyncDispose]();
  rmSync(work, { recursive: true, force: true });
}

async function installAndUpdate(dir) {
  const box = { home: join(dir, 'home'), root: join(dir, 'root'), state: join(dir, 'state') };
  mkdirSync(box.home, { recursive: true });
  mkdirSync(box.root, { recursive: true });
  const env = installEnv({ registry, dir, ...box });
  const port = await freePort();
  const line = await relay.enrollLine();
  const known = await relay.hostIds();
  try {
    const started = performance.now();
    const poller = pollHandshakes(port, 25);
    const online = relay.firstOnline(known, started);
    const script =
      `curl -fsSL ${relay.url}/install.sh | sh -s -- --user --token ${line} ` +
      `--version 0.1.0 --registry ${registry.url} --listen 127.0.0.1:${port}`;
    await exec('sh', ['-c', script], { env, timeout: 600_000 });
    const scriptDone = performance.now() - started;
    const answering = (await poller.firstSuccess()) - started;
    const host = await online;
    poller.stop();

    const during = pollHandshakes(port, 10);
    await during.firstSuccess();
    const updateStarted = performance.now();
    const relayGap = relay.offlineGap(host.host_id, updateStarted);
    await exec(join(box.home, '.local/bin/hangar-agent'), ['update', '--version', '0.2.0'], { env, timeout: 600_000 });
    const updateWall = performance.now() - updateStarted;
    during.stop();
    return {
      answering,
      online: host.at - started,
      scriptDone,
      downtime: during.longestGap(),
      relayGap: await relayGap,
      updateWall,
    };
  } finally {
    await killEverything(box.state);
    const data = join(box.home, '.hangar-agent');
    if (existsSync(data)) {
      await exec('tmux', ['-L', socketOf(data), 'kill-server']).catch(() => undefined); // none
      rmSync(join(`/tmp/tmux-${process.getuid()}`, socketOf(data)), { force: true }); // a killed server leaves it
    }
  }
}

/**
 * A bare agent from this checkout, enrolled first: cold start to first handshake and to online on
 * the relay, then SIGTERM → answering again.
 */
async function bareAgent(dir) {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const known = await relay.hostIds();
  await exec(process.execPath, [AGENT, 'enroll', '--data', dir, '--token', await relay.enrollLine()]);
  const start = () =>
    spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dir], {
      stdio: 'ignore',
      env: { ...process.env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'warn' },
    });
  let began = performance.now();
  let poller = pollHandshakes(port, 10);
  const online = relay.firstOnline(known, began);
  let agent = start();
  const startMs = (await poller.firstSuccess()) - began;
  const onlineMs = (await online).at - began;
  poller.stop();
  poller = pollHandshakes(port, 10);
  await poller.firstSuccess();
  began = performance.now();
  agent.kill('SIGTERM');
  await new Promise((resolve) => agent.once('exit', resolve));
  agent = start();
  while (poller.lastSuccessAt() < began) await new Promise((resolve) => setTimeout(resolve, 5));
  poller.stop();
  const restartMs = poller.longestGap();
  agent.kill('SIGTERM');
  await new Promise((resolve) => agent.once('exit', resolve));
  await exec('tmux', ['-L', socketOf(dir), 'kill-server']).catch(() => undefined); // none started
  return { startMs, onlineMs, restartMs };
}

/** TLS handshakes with 127.0.0.1:port every intervalMs; tracks successes and the longest gap. */
function pollHandshakes(port, intervalMs) {
  let stopped = false;
  let last = 0;
  let gap = 0;
  let first;
  const waiters = [];
  const loop = async () => {
    while (!stopped) {
      const ok = await handshake(port);
      const now = performance.now();
      if (ok) {
        if (last > 0) gap = Math.max(gap, now - last);
        last = now;
        if (first === undefined) {
          first = now;
          waiters.splice(0).forEach((resolve) => resolve(now));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  };
  void loop();
  return {
    firstSuccess: () =>
      first !== undefined ? Promise.resolve(first) : new Promise((resolve) => waiters.push(resolve)),
    lastSuccessAt: () => last,
    longestGap: () => gap,
    stop: () => {
      stopped = true;
    },
  };
}

function handshake(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 1000 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** The agent's tmux socket for a data dir (host-agent/src/sessions/tmux.ts). */
function socketOf(dataDir) {
  return tmuxSocketNameOf(realpathSync(dataDir));
}
