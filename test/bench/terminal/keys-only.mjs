#!/usr/bin/env node
// Only the keystroke part of bench:terminal (the echo at three paces against direct tmux and
// ssh + tmux), for working on latency without the floods: `node test/bench/terminal/keys-only.mjs`.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AGENT, freePort, HANGAR, loadAverage, startAgent, threadsCpuMs, wakeUps } from '../support.mjs';
import { selfSignedCertificate } from '../../support/self-signed.mjs';
import { benchPlace, echoClient, echoRows, PANE_PROGRAM, PACES, startSshd } from './keystrokes.mjs';
import { printHopTable } from './hops.mjs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { tmuxSocketNameOf } from '@hangar/shared';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 60);
const { dir, home, data, socket, env } = benchPlace();
// BENCH_TRACE=1: the agent and hangar attach stamp each hop of a keystroke (HANGAR_TRACE_KEYS),
// printed after the table as the median time per hop (hops.mjs).
const traceDir = process.env.BENCH_TRACE ? join(dir, 'trace') : undefined;
let trace;
if (traceDir) {
  mkdirSync(traceDir);
  env.HANGAR_TRACE_KEYS = traceDir;
  const lines = [];
  // The monotonic clock the traced processes stamp (performance.now()'s origin is not exactly on it).
  trace = {
    event: (name) => lines.push(`${(Number(process.hrtime.bigint()) / 1e6).toFixed(4)} ${name} 0`),
    write: () => writeFileSync(join(traceDir, `bench-${process.pid}.trace`), lines.join('\n') + '\n'),
  };
}
/** The floors' certificate files (node-floor.mjs makes the same ones). */
function floorFiles(dir) {
  selfSignedCertificate(dir, { name: 'floor', commonName: 'floor' });
  return { certFile: join(dir, 'floor-cert.pem'), keyFile: join(dir, 'floor-key.pem') };
}
const spec = (flags, env, nice) =>
  [...flags, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...(nice === undefined ? [] : [`nice ${nice}`])].join(
    ' ',
  );
const node = (bin, args) => execFileSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });

const agent = await startAgent({ data, env });
// BENCH_BASELINE=<another checkout, built>: its agent and hangar attach are measured in the same
// run as a fourth client (before/after a change, under the same load).
const baseline = process.env.BENCH_BASELINE ? resolve(process.env.BENCH_BASELINE) : undefined;
const baseEnv = { ...env, HANGAR_HOME: join(dir, 'base-home') };
delete baseEnv.HANGAR_TRACE_KEYS;
const baseAgent =
  baseline &&
  (await startAgent({
    data: join(dir, 'base-agent'),
    env: baseEnv,
    bin: join(baseline, 'host-agent', 'bin', 'hangar-agent.js'),
    // Run as that checkout runs its agent (its shared/src/agent-runtime.ts), not with this one's flags.
    flags: (await import(join(baseline, 'shared', 'dist', 'agent-runtime.js'))).AGENT_NODE_FLAGS,
  }));
const ssh = await startSshd(dir);
let rows = [];
const floors = [];
const doorHomes = [];
try {
  const code = JSON.parse(node(AGENT, ['pair', '--data', data, '--json'])).code;
  node(HANGAR, ['hosts', 'add', 'bench', agent.address, '--code', code]);
  const extraClients = [];
  if (baseAgent) {
    const baseHangar = join(baseline, 'electron', 'bin', 'hangar.js');
    const baseNode = (bin, args) => execFileSync(process.execPath, [bin, ...args], { env: baseEnv, encoding: 'utf8' });
    const baseCode = JSON.parse(
      baseNode(join(baseline, 'host-agent', 'bin', 'hangar-agent.js'), [
        'pair',
        '--data',
        join(dir, 'base-agent'),
        '--json',
      ]),
    ).code;
    baseNode(baseHangar, ['hosts', 'add', 'bench', baseAgent.address, '--code', baseCode]);
    extraClients.push({
      name: `hangar attach before (${process.env.BENCH_BASELINE})`,
      start: () => {
        baseNode(baseHangar, ['session', 'new', 'bench', '--name', 'echo-before', '--', 'sh', '-c', PANE_PROGRAM]);
        return echoClient(process.execPath, [baseHangar, 'attach', 'bench', 'echo-before'], baseEnv);
      },
      roots: (attached) => [attached.proc.pid, baseAgent.child.pid],
    });
  }
  // `hangar attach` (the row of that name) moves its keys and echoes onto a lane beside the link
  // in its first pause in typing (lane/PROTOCOL.md); the same command kept on the link's mux
  // stream (HANGAR_LANES=off) is the same run's reference.
  extraClients.push({
    name: 'hangar attach, link stream (HANGAR_LANES=off)',
    start: () => {
      node(HANGAR, ['session', 'new', 'bench', '--name', 'echo-mux', '--', 'sh', '-c', PANE_PROGRAM]);
      const muxEnv = { ...env, HANGAR_LANES: 'off' };
      delete muxEnv.HANGAR_TRACE_KEYS; // its hops are not told apart from the lane's
      return echoClient(process.execPath, [HANGAR, 'attach', 'bench', 'echo-mux'], muxEnv);
    },
    roots: (attached) => [attached.proc.pid, agent.child.pid],
  });
  // BENCH_FLOOR=1: two minimal Node processes relaying the terminal over TLS (and plain TCP) on
  // loopback at the same pace, the floor for a Node client and agent (node-floor.mjs); and the
  // same relay in C (socat), when socat is installed. BENCH_FLOOR_VARIANTS adds TLS Node floors
  // run differently, `name:token token;name:…`, each token a Node flag (`--single-threaded-gc`),
  // an environment variable (`UV_THREADPOOL_SIZE=1`) or `nice=<n>` (both processes).
  if (process.env.BENCH_FLOOR) {
    const floorScript = join(import.meta.dirname, 'node-floor.mjs');
    const variants = [
      { kind: 'tls', label: 'tls' },
      { kind: 'tcp', label: 'tcp' },
      ...(process.env.BENCH_FLOOR_VARIANTS ?? '')
        .split(';')
        .filter(Boolean)
        .map((spec) => {
          const [label, tokens = ''] = spec.split(':');
          const words = tokens.split(' ').filter(Boolean);
          return {
            kind: 'tls',
            label,
            flags: words.filter((w) => w.startsWith('--')),
            env: Object.fromEntries(words.filter((w) => /^[A-Z_]+=/.test(w)).map((w) => w.split('='))),
            nice: words.find((w) => w.startsWith('nice='))?.slice(5),
          };
        }),
    ];
    for (const { kind, label, flags = [], env: extraEnv = {}, nice } of variants) {
      const tmuxSession = `floor-${label}`;
      const floorEnv = { ...env, ...extraEnv };
      // A variant's trace events are not told apart from the plain floor's: traced only unchanged.
      if (label !== kind) delete floorEnv.HANGAR_TRACE_KEYS;
      const command = (role, ...args) => {
        const argv = [...flags, floorScript, role, kind, dir, ...args];
        return nice === undefined ? [process.execPath, argv] : ['nice', ['-n', nice, process.execPath, ...argv]];
      };
      const server = spawn(...command('server', socket, tmuxSession), {
        env: floorEnv,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      floors.push(server);
      const [port] = await once(createInterface({ input: server.stdout }), 'line');
      extraClients.push({
        name:
          label === kind
            ? `node floor, ${kind} relay pair`
            : `node floor, tls, ${label} (${spec(flags, extraEnv, nice)})`,
        start: () => {
          // In the agent's tmux server, started by then with its own configuration.
          execFileSync('tmux', ['-L', socket, 'new-session', '-d', '-s', tmuxSession, 'sh', '-c', PANE_PROGRAM], {
            env,
          });
          // Its key and echo events under their own names, so the hop table can tell them apart.
          const floorTrace =
            trace && label === kind
              ? { event: (name) => trace.event(name.replace(/^bench\./, `bench.${kind}-floor.`)) }
              : undefined;
          return echoClient(...command('client', port), floorEnv, floorTrace);
        },
        roots: (attached) => [attached.proc.pid, server.pid],
      });
    }
    // The same shape in C: socat in raw mode on the terminal, TLS (OpenSSL) or TCP on loopback,
    // and on the other end `tmux attach` in a pty it makes.
    let socat = true;
    try {
      execFileSync('which', ['socat'], { stdio: 'ignore' });
    } catch {
      socat = false;
      rows.push(['socat floor', 'not measured: install socat (apt-get install socat)']);
    }
    for (const kind of socat ? ['tls', 'tcp'] : []) {
      const tmuxSession = `socat-${kind}`;
      const { certFile, keyFile } = floorFiles(dir);
      const port = await freePort();
      const attach = `tmux -u -L ${socket} attach -t =${tmuxSession}`;
      const listen =
        kind === 'tls'
          ? `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,nodelay,cert=${certFile},key=${keyFile},verify=0`
          : `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,nodelay`;
      const server = spawn('socat', [listen, `EXEC:${attach},pty,setsid,ctty,raw,echo=0`], {
        env: { ...env, TERM: 'xterm-256color' },
        stdio: 'ignore',
      });
      floors.push(server);
      const target =
        kind === 'tls'
          ? `OPENSSL:127.0.0.1:${port},cafile=${certFile},commonname=floor,nodelay,retry=50,interval=0.1`
          : `TCP:127.0.0.1:${port},nodelay,retry=50,interval=0.1`;
      extraClients.push({
        name: `socat floor, ${kind} relay pair`,
        start: () => {
          execFileSync('tmux', ['-L', socket, 'new-session', '-d', '-s', tmuxSession, 'sh', '-c', PANE_PROGRAM], {
            env,
          });
          return echoClient('socat', ['-,raw,echo=0', target], env);
        },
        roots: (attached) => [attached.proc.pid, server.pid],
      });
    }
  }
  // BENCH_DOOR=1: hangar attach while a core runs on this computer (`hangar up --no-ui`, as when
  // the app is open): the command then goes through that core's door, a second link in between.
  // With BENCH_BASELINE, the baseline's too.
  const doorClient = async ({ name, root, agentData, agentAddress, home, sessionEnv, session, staying }) => {
    const hangar = join(root, 'electron', 'bin', 'hangar.js');
    const doorEnv = { ...env, HANGAR_HOME: join(dir, home) };
    delete doorEnv.HANGAR_TRACE_KEYS;
    const pairing = execFileSync(
      process.execPath,
      [join(root, 'host-agent', 'bin', 'hangar-agent.js'), 'pair', '--data', agentData, '--json'],
      { env: doorEnv, encoding: 'utf8' },
    );
    const doorCode = JSON.parse(pairing).code;
    execFileSync(process.execPath, [hangar, 'hosts', 'add', 'bench', agentAddress, '--code', doorCode], {
      env: doorEnv,
    });
    const up = spawn(process.execPath, [hangar, 'up', '--no-ui'], {
      env: doorEnv,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    floors.push(up);
    doorHomes.push(join(dir, home, 'agent'));
    const lines = createInterface({ input: up.stdout });
    for await (const line of lines) if (line.includes('local stack up')) break;
    const client = (clientName, clientSession, clientEnv) => ({
      name: clientName,
      start: () => {
        execFileSync(
          process.execPath,
          [hangar, 'session', 'new', 'bench', '--name', clientSession, '--', 'sh', '-c', PANE_PROGRAM],
          {
            env: sessionEnv,
          },
        );
        return echoClient(process.execPath, [hangar, 'attach', 'bench', clientSession], clientEnv);
      },
    });
    // This build's attach moves its terminal onto a link of its own after the first screen; the
    // same command kept on the running core (HANGAR_ATTACH_HANDOVER=off) is the same run's reference.
    return staying
      ? [
          client(name, session, doorEnv),
          client(`${name}, staying on it`, `${session}-staying`, { ...doorEnv, HANGAR_ATTACH_HANDOVER: 'off' }),
        ]
      : [client(name, session, doorEnv)];
  };
  if (process.env.BENCH_DOOR) {
    extraClients.push(
      ...(await doorClient({
        name: 'hangar attach through a running core',
        root: resolve(import.meta.dirname, '..', '..', '..'),
        agentData: data,
        agentAddress: agent.address,
        home: 'door-home',
        sessionEnv: env,
        session: 'echo-door',
        staying: true,
      })),
    );
    if (baseAgent) {
      extraClients.push(
        ...(await doorClient({
          name: `hangar attach through a running core, before (${process.env.BENCH_BASELINE})`,
          root: baseline,
          agentData: join(dir, 'base-agent'),
          agentAddress: baseAgent.address,
          home: 'base-door-home',
          sessionEnv: baseEnv,
          session: 'echo-door-before',
        })),
      );
    }
  }
  // The agents' CPU and wake-ups (their main thread's) per key over the whole run: each serves
  // one client typing the same keys for the same time (BENCH_CLIENTS=hangar: with the other
  // clients, their tmux sessions are in this build's agent's tmux server).
  const pids = [agent.child.pid, baseAgent?.child.pid];
  const agentCost = () => pids.map((pid) => (pid ? [threadsCpuMs(pid), wakeUps(pid)] : [0, 0]));
  const costBefore = agentCost();
  rows.push(
    ...(await echoRows({ socket, env, ssh, keys: KEYSTROKES, trace, agentPid: agent.child.pid, extraClients })),
  );
  const keys = KEYSTROKES * PACES.length;
  const [ours, base] = agentCost().map(([ms, woken], i) => [
    (ms - costBefore[i][0]) / keys,
    (woken - costBefore[i][1]) / keys,
  ]);
  const fmt = ([ms, woken]) => `${ms.toFixed(3)} ms, ${woken.toFixed(2)} wake-ups`;
  rows.push([
    `agent CPU and main-thread wake-ups per key (whole run, load ${loadAverage()})`,
    baseAgent ? `${fmt(ours)}; before ${fmt(base)}` : fmt(ours),
  ]);
} finally {
  await Promise.all(
    floors.map((server) => {
      const exited = once(server, 'exit');
      server.kill();
      return exited;
    }),
  );
  const stopped = new Promise((r) => agent.child.once('exit', r));
  agent.child.kill('SIGTERM');
  await stopped;
  if (baseAgent) {
    baseAgent.child.kill('SIGTERM');
    try {
      const baseSocket = tmuxSocketNameOf(join(dir, 'base-agent'));
      execFileSync('tmux', ['-L', baseSocket, 'kill-server'], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  ssh.stop?.();
  // The embedded agents of BENCH_DOOR's `hangar up`s.
  for (const home of doorHomes) {
    try {
      execFileSync('tmux', ['-L', tmuxSocketNameOf(home), 'kill-server'], { stdio: 'ignore' });
    } catch {
      // none
    }
  }
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  if (trace) {
    trace.write();
    printHopTable(
      traceDir,
      PACES.map((p) => String(p.pauseMs)),
    );
  }
  if (process.env.BENCH_TRACE_KEEP) console.log(`trace kept in ${traceDir}`);
  else {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
    } catch (error) {
      // A session's output pipe may still be writing there as tmux goes: the figures count more.
      console.error(`left ${dir} behind: ${error.message}`);
    }
  }
}
const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\nHangar keystroke echo (loopback, ${KEYSTROKES} keys per row)\n`);
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
process.exit(0);
