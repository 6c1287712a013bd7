// What the relayed-path and mesh benches share: an account on a relay with two enrolled agents on
// this machine, "near" on loopback (reached directly) and "far" in a network namespace behind a
// firewall that lets nothing in (reached through the relay's splice, or over WebRTC when `udp`
// lets its packets out), each with an HTTP origin beside it, and keystroke timing through
// `hangar attach`. Needs root (ip netns). Everything it starts is undone by `dispose()`.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import pty from 'node-pty';
import { AGENT_ENV, AGENT_NODE_FLAGS, tmuxSocketNameOf } from '@hangar/shared';
import { firewalledNamespaceSteps, namespaceNames } from '../support/firewalled-namespace.mjs';
import { AGENT, HANGAR, ROOT, percentile, sleep } from './support.mjs';

const RELAY = join(ROOT, 'relay', 'bin', 'hangar-relay.js');
const run = promisify(execFile);
/** BENCH_CPU_PROF=DIR: each agent writes a V8 CPU profile there when it exits (node --cpu-prof). */
const PROFILE = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

/**
 * `origin` is the source of an HTTP server (`node -e`) that prints `port N`, started beside each
 * agent; `udp`: false drops the far namespace's outbound UDP (no WebRTC path), true lets it out,
 * binds ICE to the veth's two ends (this machine's other interfaces, other tests' namespaces
 * among them, would otherwise crowd the candidates) and leaves the relay's splice out of the dial
 * (HANGAR_SPLICE=off: on a loaded machine WebRTC now and then takes longer than its head start,
 * and the splice would win the race).
 */
export async function twoHosts({ name, origin, udp, relayArgs = [] }) {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `hangar-bench-${name}-`)));
  const home = join(dir, 'laptop');
  const env = { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'warn' };
  delete env.TMUX;
  const children = [];

  // ---- a firewalled namespace for "far" (test/support/firewalled-namespace.mjs) ----
  const names = namespaceNames({ prefix: 'hgbench', veth: 'hb' });
  const { name: ns, outside, net } = names;
  const wrapper = ['ip', 'netns', 'exec', ns];
  if (udp) {
    env.HANGAR_WEBRTC_BIND_ADDRESS = `${net}.1`;
    process.env.HANGAR_WEBRTC_BIND_ADDRESS = `${net}.1`; // a core in the bench's own process
    env.HANGAR_SPLICE = 'off';
    process.env.HANGAR_SPLICE = 'off';
  }

  const dispose = async () => {
    for (const child of children) child.kill();
    await sleep(500);
    // Each agent's own tmux server (its socket is named after its data dir), then the namespace:
    // deleting it deletes its veth end, and with it the pair. Either may already be gone.
    for (const host of ['near', 'far']) {
      const socket = tmuxSocketNameOf(join(dir, host));
      spawnSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
    }
    spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'delete', outside], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };

  /** A process whose first stdout line matching `pattern` is what we wait for. */
  function started(argv, pattern, extraEnv = {}) {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...env, ...extraEnv },
    });
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

  try {
    const steps = firewalledNamespaceSteps(names, { udp, defaultRoute: false });
    for (const [command, ...args] of steps) execFileSync(command, args);

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
        ...relayArgs,
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
    /** Process ids of each host's agent and origin (for CPU accounting: /proc/PID/stat). */
    const pids = {};
    for (const [host, prefix] of [
      ['near', []],
      ['far', wrapper],
    ]) {
      const data = join(dir, host);
      execFileSync('mkdir', ['-p', data]);
      const agentAt = children.length;
      await started(
        [
          ...prefix,
          process.execPath,
          ...AGENT_NODE_FLAGS,
          ...PROFILE,
          AGENT,
          'serve',
          '--listen',
          '127.0.0.1:0',
          '--data',
          data,
        ],
        /"address":"([^"]+)"/,
        { ...AGENT_ENV, ...(udp && host === 'far' ? { HANGAR_WEBRTC_BIND_ADDRESS: `${net}.2` } : {}) },
      );
      const line = (await run(process.execPath, [HANGAR, 'hosts', 'enroll-token', '--name', host], { env })).stdout;
      const token = /--token (\S+)/.exec(line)[1];
      await run(process.execPath, [AGENT, 'enroll', '--data', data, '--name', host, '--token', token], { env });
      origins[host] = Number(await started([...prefix, process.execPath, '-e', origin], /^port (\d+)$/));
      pids[host] = { agent: children[agentAt].pid, origin: children.at(-1).pid };
    }
    // Online on the relay, then the first link (pairs with the line's secret), and a `cat` to type into.
    for (const host of ['near', 'far']) {
      for (let tries = 0; ; tries++) {
        const listed = JSON.parse((await run(process.execPath, [HANGAR, 'hosts', 'ls', '--json'], { env })).stdout);
        if (listed.find((h) => h.name === host)?.account?.presence === 'online') break;
        if (tries > 100) throw new Error(`${host} never came online`);
        await sleep(200);
      }
      await run(process.execPath, [HANGAR, 'session', 'new', host, '--name', 'echo', '--', 'cat'], { env });
    }
    const listed = JSON.parse((await run(process.execPath, [HANGAR, 'hosts', 'ls', '--json'], { env })).stdout);
    const via = Object.fromEntries(listed.map((h) => [h.name, h.via]));
    return {
      home,
      env,
      wrapper,
      origins,
      pids,
      via,
      keystrokes: (host, count) => keystrokes(env, host, count),
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat. */
/**
 * Keystroke echo through `hangar attach` to near (the reference), then to far (`farPath` names
 * how it is reached): a row of p50 / p99 each, and one of the p50 ratio and what far adds.
 */
export async function echoRows(stack, count, farPath) {
  const direct = await stack.keystrokes('near', count);
  const far = await stack.keystrokes('far', count);
  const p = (samples, q) => percentile(samples, q).toFixed(2);
  const [directP50, farP50] = [percentile(direct, 50), percentile(far, 50)];
  return [
    ['keystroke echo p50 / p99, direct link (reference)', `${p(direct, 50)} / ${p(direct, 99)} ms`],
    [`keystroke echo p50 / p99, ${farPath}`, `${p(far, 50)} / ${p(far, 99)} ms`],
    [
      `echo p50 ratio ${farPath} / direct (added)`,
      `${(farP50 / directP50).toFixed(2)}× (+${(farP50 - directP50).toFixed(2)} ms)`,
    ],
  ];
}

export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15) in clock ticks
}

/** `hangar attach` in a pty, typing into `cat` one byte at a time and timing each echo (ms; the first `count` warm up). */
async function keystrokes(env, host, count) {
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
  for (let i = 0; i < count * 2; i++) {
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
    if (i >= count) samples.push(t1 - t0); // the first half warms up
  }
  proc.kill();
  await sleep(300);
  return samples;
}
