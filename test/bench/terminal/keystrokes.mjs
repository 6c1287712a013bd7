// Keystroke echo at three paces, through three clients of the same tmux session: a direct
// `tmux attach`, `ssh localhost` + `tmux attach` (a throwaway sshd on loopback with its own host
// and user keys), and `hangar attach`. A pty types one key into `cat`, waits for exactly that
// key's echo, pauses, and types the next.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tmuxSocketNameOf } from '@hangar/shared';
import pty from 'node-pty';
import { HANGAR, percentile, processesCost, relayProcesses, sleep } from '../support.mjs';

export { startSshd } from '../support.mjs';

/**
 * A terminal bench's scratch folder: the CLI's state (`home`), the agent's data (`data`), that
 * agent's tmux socket name, and an environment for both (HANGAR_HOME set, TMUX unset).
 */
export function benchPlace() {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-')));
  const home = join(dir, 'home');
  const data = join(dir, 'agent');
  const env = { ...process.env, HANGAR_HOME: home };
  delete env.TMUX;
  return { dir, home, data, socket: tmuxSocketNameOf(data), env };
}

/** Pauses between an echo and the next key: back to back, a fast typist, a person's pace. */
export const PACES = [
  { name: 'back to back', pauseMs: 0 },
  { name: '50 ms pauses', pauseMs: 50 },
  { name: '200 ms pauses', pauseMs: 200 },
];

/**
 * The program in each measured pane: the tty echoes what is typed (cooked mode, like `cat`), and
 * each Enter clears the screen and prints `#<line number>#`. A key's echo is found once the line
 * typed so far (its prefix up to this key) appears in the printable text received since the line
 * began; the screen then holds nothing but that line, so neither an escape sequence nor a redraw
 * (tmux repaints a client that becomes the size driver) nor stale bytes can match early.
 */
export const PANE_PROGRAM = 'n=0; while IFS= read -r l; do n=$((n+1)); printf "\\033[H\\033[2J#%d#" "$n"; done';
const KEYS_PER_LINE = 10;
const LINE_KEYS = 'abcdefghijklmnopqrstuvwxyz';

/** The printable text of terminal output: escape sequences and control characters removed. */
export function printable(text) {
  return text.replace(
    // CSI … final byte; OSC … BEL or ST; DCS/APC/PM … ST; two-byte ESC sequences; C0 controls.
    /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[ -/]*[0-~]|[\x00-\x1f\x7f]/g,
    '',
  );
}

/**
 * A program in a pty showing a tmux session whose pane runs `cat`. Collects the printable text
 * of its output (the decoder keeps a partial UTF-8 or escape sequence for the next chunk).
 */
export function echoClient(file, args, env, trace) {
  const proc = pty.spawn(file, args, { name: 'xterm-256color', cols: 120, rows: 40, env, encoding: null });
  const decoder = new TextDecoder();
  let pending = '';
  let text = '';
  let waiter;
  proc.onData((chunk) => {
    const at = performance.now();
    pending += decoder.decode(chunk, { stream: true });
    // An escape sequence cut by the chunk's end waits for the rest.
    const cut = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)$/.exec(pending);
    const ready = cut ? pending.slice(0, cut.index) : pending;
    pending = cut ? pending.slice(cut.index) : '';
    text += printable(ready);
    if (waiter && text.includes(waiter.needle)) {
      trace?.event('bench.echo');
      const w = waiter;
      waiter = undefined;
      w.resolve(at);
    }
  });
  return {
    proc,
    trace,
    /** Forget what arrived so far (the start of a line). */
    reset() {
      text = '';
    },
    /** Resolves with the time the text received since the last reset first contained needle. */
    waitFor(needle, timeoutMs = 10_000) {
      if (text.includes(needle)) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no echo of ${JSON.stringify(needle)}`)), timeoutMs);
        waiter = {
          needle,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        };
      });
    },
  };
}

/**
 * Types one line of KEYS_PER_LINE keys at the pace given, each after the previous one's echo plus
 * `pauseMs`, then Enter, and returns each key's echo time in ms. The next line begins once the
 * pane has cleared the screen for it.
 */
export async function typeLine(client, pauseMs) {
  const samples = [];
  const start = (client.lines ?? 0) % (LINE_KEYS.length - KEYS_PER_LINE);
  let typed = '';
  client.reset();
  for (const key of LINE_KEYS.slice(start, start + KEYS_PER_LINE)) {
    if (pauseMs > 0) await sleep(pauseMs);
    typed += key;
    const echoed = client.waitFor(typed);
    const t0 = performance.now();
    client.trace?.event(`bench.key.${pauseMs}`);
    // One write(2) from here: node-pty's write() goes through the thread pool (a worker woken per
    // key, late on a busy machine), which would time the bench rather than the client.
    writeSync(client.proc.fd, key);
    samples.push((await echoed) - t0);
  }
  client.lines = (client.lines ?? 0) + 1;
  client.reset();
  const cleared = client.waitFor(`#${client.lines}#`);
  client.proc.write('\r');
  await cleared;
  client.reset();
  return samples;
}

const stats = (samples) => ({ p50: percentile(samples, 50), p90: percentile(samples, 90) });

/**
 * The echo table: for each pace, p50 / p90 through each client, and the ratio to ssh + tmux. The
 * tmux session `hangar-echo` on the agent's server `socket` runs `cat`; `ssh` is startSshd's result.
 * A client with `roots(attached)` (its relay's processes: the client process and the server side,
 * whose descendants other than tmux count too) also gets a row per pace of their CPU time and
 * context switches (all threads) per key, counted around its own lines (each key and Enter).
 */
export async function echoRows({ socket, env, ssh, keys, trace, agentPid, extraClients = [] }) {
  const started = [];
  const session = (name) => {
    started.push(name);
    execFileSync(
      process.execPath,
      [HANGAR, 'session', 'new', 'bench', '--name', name, '--', 'sh', '-c', PANE_PROGRAM],
      {
        env,
      },
    );
    return ['-u', '-L', socket, 'attach', '-t', `=hangar-${name}`];
  };
  const clients = [
    { name: 'direct tmux attach', start: () => echoClient('tmux', session('echo-direct'), env) },
    ...(ssh.command
      ? [
          {
            name: 'ssh localhost + tmux attach',
            start: () => echoClient(ssh.command[0], [...ssh.command.slice(1), 'tmux', ...session('echo-ssh')], env),
            roots: (attached) => [attached.proc.pid, ssh.pid],
          },
        ]
      : []),
    {
      name: 'hangar attach',
      start: () => {
        session('echo-hangar');
        // BENCH_ATTACH_NODE_FLAGS: Node flags for hangar attach (e.g. --cpu-prof), as BENCH_AGENT_NODE_FLAGS for the agent.
        const flags = process.env.BENCH_ATTACH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
        return echoClient(process.execPath, [...flags, HANGAR, 'attach', 'bench', 'echo-hangar'], env, trace);
      },
      roots: (attached) => [attached.proc.pid, ...(agentPid ? [agentPid] : [])],
    },
  ];
  clients.push(...extraClients);
  // BENCH_CLIENTS=hangar (substrings of the names, comma-separated) measures only those, e.g.
  // under a profiler.
  const only = process.env.BENCH_CLIENTS?.split(',');
  const measured = clients.filter((c) => !only || only.some((name) => c.name.includes(name)));
  // Every client is attached to its own session at once, and they take turns a line at a time,
  // so a change in the machine's load during the run falls on all of them alike.
  for (const client of measured) {
    client.attached = client.start();
    try {
      for (let i = 0; i < 3; i++) await typeLine(client.attached, 0); // attached, warm, size driver
    } catch (error) {
      throw new Error(`${client.name}: ${error.message}`);
    }
  }
  // hangar attach through a running core moves its terminal onto a link of its own after its
  // first screen and a pause in typing: measured once it has.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  // [the client's processes, the server side's]: their CPU is also shown apart.
  for (const client of measured) client.pids = client.roots?.(client.attached).map((root) => relayProcesses([root]));
  const samples = new Map();
  const costs = new Map();
  for (const pace of PACES) {
    for (let round = 0; round * KEYS_PER_LINE < keys; round++) {
      for (let i = 0; i < measured.length; i++) {
        const client = measured[(round + i) % measured.length];
        const key = `${client.name}/${pace.name}`;
        const before = client.pids?.map(processesCost);
        samples.set(key, [...(samples.get(key) ?? []), ...(await typeLine(client.attached, pace.pauseMs))]);
        if (before) {
          const after = client.pids.map(processesCost);
          const sum = costs.get(key) ?? { cpuMs: 0, voluntary: 0, involuntary: 0, keys: 0, sides: before.map(() => 0) };
          after.forEach((side, i) => {
            for (const k of ['cpuMs', 'voluntary', 'involuntary']) sum[k] += side[k] - before[i][k];
            sum.sides[i] += side.cpuMs - before[i].cpuMs;
          });
          sum.keys += KEYS_PER_LINE + 1;
          costs.set(key, sum);
        }
      }
    }
  }
  for (const client of measured) {
    const exited = new Promise((r) => client.attached.proc.onExit(r));
    // hangar attach detaches (Ctrl-]) so that it exits by itself and writes its trace.
    if (client.attached.trace) client.attached.proc.write('\x1d');
    else client.attached.proc.kill();
    await exited;
  }
  // The agent's session limit (5) is shared with the rest of the bench.
  for (const name of started) {
    execFileSync(process.execPath, [HANGAR, 'session', 'kill', 'bench', name], { env });
  }
  const rows = [];
  const ms = (s) => `${s.p50.toFixed(2)} / ${s.p90.toFixed(2)} ms`;
  for (const pace of PACES) {
    const refSamples = samples.get(`ssh localhost + tmux attach/${pace.name}`);
    const ref = refSamples && stats(refSamples);
    for (const client of measured) {
      const s = stats(samples.get(`${client.name}/${pace.name}`));
      const ratio = ref ? `  (${(s.p50 / ref.p50).toFixed(2)}× / ${(s.p90 / ref.p90).toFixed(2)}× ssh)` : '';
      rows.push([`echo p50 / p90, ${pace.name}, ${client.name}`, `${ms(s)}${ratio}`]);
    }
  }
  for (const pace of PACES) {
    for (const client of measured) {
      const c = costs.get(`${client.name}/${pace.name}`);
      if (!c) continue;
      rows.push([
        `relay CPU / wake-ups / preempted per key, ${pace.name}, ${client.name}`,
        `${(c.cpuMs / c.keys).toFixed(3)} ms / ${(c.voluntary / c.keys).toFixed(2)} / ${(c.involuntary / c.keys).toFixed(2)}  (CPU ${c.sides.map((ms, i) => `${(ms / c.keys).toFixed(3)} ${i === 0 ? 'client' : 'server side'}`).join(' + ')}; ${client.pids.flat().length} processes)`,
      ]);
    }
  }
  if (!ssh.command) rows.push(['ssh localhost + tmux attach', ssh.reason]);
  rows.push(['  target', 'hangar ≤ ssh + tmux at 50 ms and 200 ms pauses, p50 and p90']);
  return rows;
}
