#!/usr/bin/env node
// Keystroke echo beside a big download on the same link (issue 16: bulk must never starve
// interactive streams). One core (this process) holds one link to an agent on loopback; a
// terminal of that core types into a tmux pane (the tty echoes each key), first with the link
// idle, then while curl downloads BENCH_BIG_MB (default 1 GiB) through a preview of the same
// host, over the same link. Prints both, the echo added by the download and the target (p50
// ≤ 1 ms, p99 ≤ 5 ms added). Not a test: figures from a shared machine, with the reference
// (the idle link) measured in the same run. Needs curl.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { HangarCore } from '@hangar/desktop/core';
import { AGENT, HANGAR, loadAverage, percentile, printRows, runCleanups, sleep, startAgent } from '../support.mjs';
import { PANE_PROGRAM, printable } from './keystrokes.mjs';

const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 1024);
const IDLE_KEYS = Number(process.env.BENCH_KEYS ?? 200);
/** Between an echo and the next key: a fast typist. */
const PAUSE_MS = 20;
const KEYS_PER_LINE = 10;
const LINE_KEYS = 'abcdefghijklmnopqrstuvwxyz';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-beside-')));
const home = join(dir, 'home');
const env = { ...process.env, HANGAR_HOME: home };
const cleanups = [];
const node = (bin, args) => execFileSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });

/** A dev-server-like origin on the host's loopback, in its own process: GET answers `mb` MiB of zeros. */
async function startOrigin() {
  const program = `
    const mib = Buffer.alloc(1 << 20);
    require('node:http').createServer((req, res) => {
      let left = ${BIG_MB};
      res.writeHead(200, { 'content-length': String(left * (1 << 20)) });
      const pump = () => { while (left > 0) { left--; if (!res.write(mib)) return res.once('drain', pump); } res.end(); };
      pump();
    }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => child.kill());
  return new Promise((resolve) => createInterface({ input: child.stdout }).once('line', (l) => resolve(Number(l))));
}

/** The terminal's printable text since the last reset, and a wait for a needle in it. */
function watch(terminal) {
  const decoder = new TextDecoder();
  let pending = '';
  let text = '';
  let waiter;
  terminal.onOutput(({ data, offset }) => {
    const at = performance.now();
    terminal.ack(offset + data.length);
    pending += decoder.decode(data, { stream: true });
    const cut = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)$/.exec(pending);
    text += printable(cut ? pending.slice(0, cut.index) : pending);
    pending = cut ? pending.slice(cut.index) : '';
    if (waiter && text.includes(waiter.needle)) {
      const w = waiter;
      waiter = undefined;
      w.resolve(at);
    }
  });
  return {
    reset: () => (text = ''),
    waitFor(needle) {
      if (text.includes(needle)) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no echo of ${JSON.stringify(needle)} within 10 s`)), 10_000);
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

/** Types lines of keys, each after the previous echo and PAUSE_MS, until `more()` says stop. */
async function type(terminal, screen, more, state) {
  const samples = [];
  while (more(samples.length)) {
    let typed = '';
    screen.reset();
    const start = state.lines % (LINE_KEYS.length - KEYS_PER_LINE);
    for (const key of LINE_KEYS.slice(start, start + KEYS_PER_LINE)) {
      await sleep(PAUSE_MS);
      typed += key;
      const echoed = screen.waitFor(typed);
      const t0 = performance.now();
      terminal.write(keyBytes(key));
      samples.push((await echoed) - t0);
    }
    state.lines++;
    screen.reset();
    const cleared = screen.waitFor(`#${state.lines}#`);
    terminal.write(keyBytes('\r'));
    await cleared;
  }
  return samples;
}

const fmt = (n) => n.toFixed(2);
const keyBytes = (key) => new TextEncoder().encode(key);
try {
  const data = join(dir, 'agent');
  const agent = await startAgent({ data, env });
  cleanups.push(() => agent.child.kill());
  const { code } = JSON.parse(node(AGENT, ['pair', '--data', data, '--json']));
  node(HANGAR, ['hosts', 'add', 'bench', agent.address, '--code', code]);
  node(HANGAR, ['session', 'new', 'bench', '--name', 'keys', '--', 'sh', '-c', PANE_PROGRAM]);
  cleanups.push(() => node(HANGAR, ['session', 'kill', 'bench', 'keys']));
  const core = await HangarCore.open({ home });
  cleanups.push(() => core.dispose());
  const origin = await startOrigin();
  await core.previews.add('bench', origin);
  const local = (await core.previews.open('bench', origin)).local_port;

  const terminal = await core.attach('bench', 'keys', { cols: 120, rows: 40 });
  cleanups.push(() => terminal.detach());
  const screen = watch(terminal);
  const state = { lines: 0 };
  await type(terminal, screen, (n) => n < 20, state); // warm-up
  const idle = await type(terminal, screen, (n) => n < IDLE_KEYS, state);

  const began = performance.now();
  let done = false;
  const download = promisify(execFile)(
    'curl',
    ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://127.0.0.1:${local}/big`],
    { encoding: 'utf8' },
  ).finally(() => (done = true));
  const busy = await type(terminal, screen, () => !done, state);
  const [status, bytes] = (await download).stdout.trim().split(' ').map(Number);
  if (status !== 200 || bytes !== BIG_MB * (1 << 20)) throw new Error(`download answered ${status}, ${bytes} bytes`);
  const mbps = bytes / 1e6 / ((performance.now() - began) / 1000);

  const p = (list, q) => percentile(list, q);
  const added50 = Math.max(0, p(busy, 50) - p(idle, 50));
  const added99 = Math.max(0, p(busy, 99) - p(idle, 99));
  const rows = [
    ['keystroke echo, idle link p50 / p99', `${fmt(p(idle, 50))} / ${fmt(p(idle, 99))} ms (${idle.length} keys)`],
    [
      `keystroke echo during a ${BIG_MB} MiB preview download on the same link p50 / p99`,
      `${fmt(p(busy, 50))} / ${fmt(p(busy, 99))} ms (${busy.length} keys; download ${mbps.toFixed(0)} MB/s)`,
    ],
    [
      'echo added by the download p50 / p99',
      `${fmt(added50)} / ${fmt(added99)} ms  (target ≤ 1 / ≤ 5 ms: ${added50 <= 1 && added99 <= 5 ? 'met' : 'NOT met'})`,
    ],
  ];
  printRows(`\nKeystrokes beside a download (loopback, load average ${loadAverage()})\n`, rows);
} finally {
  await runCleanups(cleanups);
  rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
}
process.exit(0);
