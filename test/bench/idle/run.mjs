#!/usr/bin/env node
// Idle benchmark: what Hangar costs while nobody uses it. After BENCH_SETTLE_S (default 10) of
// quiet, for BENCH_IDLE_S (default 30) it reads CPU time (schedstat) and wake-ups (voluntary
// context switches: a thread went to sleep and was woken) of every thread from /proc, for
//   (a) a standalone `hangar-agent serve`,
//   (b) `hangar up` (the core and its embedded agent), no UI,
//   (c) `hangar up` with the web UI open in Chromium and one terminal at a shell prompt,
// and prints them per process and per thread name, beside references measured in the same run:
// an idle sshd with one idle connection (run as root with openssh-server installed: the throwaway
// sshd of support.mjs), and a tmux server with one session. Not a test: numbers only.
// BENCH_BASELINE=<checkout> (built) runs (a)–(c) from that checkout too, alternating with this
// one, BENCH_ROUNDS times (default 1): before and after a change in the same run on one machine.
// BENCH_ONLY=sshd,tmux,agent,up,ui runs a subset.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { tmuxSocketNameOf } from '@hangar/shared';
import { CHROMIUM, CHROMIUM_ARGS } from '../../support/chromium.mjs';
import {
  ROOT,
  loadAverage,
  printRows,
  relayProcesses,
  requirePrograms,
  runCleanups,
  sleep,
  startAgent,
  startSshd,
} from '../support.mjs';

const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const BASELINE = process.env.BENCH_BASELINE ? resolve(process.env.BENCH_BASELINE) : undefined;
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (name) => only === undefined || only.includes(name);

requirePrograms({ tmux: 'tmux' });

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-idle-')));
const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
let scratch = 0;
const scratchDir = (name) => join(dir, `${name}-${scratch++}`);

/** Every thread of `pids` now: process label, thread name, CPU ns, voluntary switches. */
function snapshot(processes) {
  const threads = new Map();
  for (const [label, pid] of processes) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        const base = `/proc/${pid}/task/${tid}`;
        const ns = Number(readFileSync(`${base}/schedstat`, 'utf8').split(' ')[0]);
        const status = readFileSync(`${base}/status`, 'utf8');
        const voluntary = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
        const name = readFileSync(`${base}/comm`, 'utf8').trim();
        threads.set(`${pid}/${tid}`, { label, thread: tid === String(pid) ? `${name} (main)` : name, ns, voluntary });
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return threads;
}

/**
 * Settles, then measures `processes()` (label → pid pairs, read again at the end so a process
 * started meanwhile counts from zero) over IDLE_S: per process label and per thread name within it.
 */
async function measure(processes) {
  await sleep(SETTLE_S * 1000);
  const before = snapshot(processes());
  const t0 = performance.now();
  await sleep(IDLE_S * 1000);
  const after = snapshot(processes());
  const seconds = (performance.now() - t0) / 1000;
  const byProcess = new Map();
  for (const [key, end] of after) {
    const start = before.get(key) ?? { ns: 0, voluntary: 0 };
    const process = byProcess.get(end.label) ?? { cpu: 0, wakes: 0, threads: new Map(), pids: new Set() };
    process.pids.add(key.split('/')[0]);
    const cpu = (end.ns - start.ns) / 1e6 / seconds;
    const wakes = (end.voluntary - start.voluntary) / seconds;
    process.cpu += cpu;
    process.wakes += wakes;
    const thread = process.threads.get(end.thread) ?? { cpu: 0, wakes: 0, count: 0 };
    thread.cpu += cpu;
    thread.wakes += wakes;
    thread.count++;
    process.threads.set(end.thread, thread);
    byProcess.set(end.label, process);
  }
  return byProcess;
}

const figure = ({ cpu, wakes }) => `${cpu.toFixed(2).padStart(7)} ms/s  ${wakes.toFixed(2).padStart(7)} wake-ups/s`;

/** Rows for one measurement: a process's totals, then each thread name that did anything. */
function rowsOf(title, byProcess) {
  const rows = [];
  for (const [label, process] of byProcess) {
    const count = process.pids.size > 1 ? ` (${process.pids.size} processes)` : '';
    rows.push([`${title}: ${label}${count}`, figure(process)]);
    const busy = [...process.threads].filter(([, t]) => t.wakes >= 0.05 || t.cpu >= 0.05);
    for (const [name, thread] of busy.sort((a, b) => b[1].wakes - a[1].wakes)) {
      rows.push([`    ${name}${thread.count > 1 ? ` ×${thread.count}` : ''}`, figure(thread)]);
    }
  }
  return rows;
}

/** The Chromium this process started (Playwright's child), by its name. */
function chromiumsOfOurs() {
  const children = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/);
  return children
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('chrom');
      } catch {
        return false; // gone
      }
    });
}

/** The processes below `root` (itself included), labelled `label`. */
const tree = (label, root) => relayProcesses([root]).map((pid) => [label, pid]);

async function sshdReference() {
  const home = scratchDir('sshd');
  execFileSync('mkdir', ['-p', home]);
  const sshd = await startSshd(home).catch((error) => ({ reason: error.message }));
  if (sshd.reason) return [['sshd, one idle connection', sshd.reason]];
  try {
    // One connection to a shell's prompt, left alone (as a terminal someone walked away from).
    const ssh = spawn(sshd.command[0], [...sshd.command.slice(1), 'bash', '--norc', '--noprofile', '-i'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      const result = await measure(() => tree('sshd + its connection', sshd.pid));
      return rowsOf('reference', result);
    } finally {
      ssh.kill();
    }
  } finally {
    sshd.stop();
  }
}

async function tmuxReference() {
  const socket = `hangar-bench-idle-${process.pid}`;
  const tmux = (...args) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  tmux('new-session', '-d', '-s', 'idle', 'bash', '--norc', '--noprofile');
  try {
    const pid = Number(tmux('display-message', '-p', '#{pid}').trim());
    return rowsOf('reference', await measure(() => [['tmux server, one session', pid]]));
  } finally {
    tmux('kill-server');
  }
}

async function standaloneAgent(root, side) {
  const data = scratchDir('agent');
  const { child } = await startAgent({
    data,
    env: { ...process.env, HANGAR_HOME: join(data, 'home') },
    bin: join(root, 'host-agent', 'bin', 'hangar-agent.js'),
  });
  try {
    return rowsOf(`(a) ${side}`, await measure(() => [['hangar-agent serve', child.pid]]));
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/** `hangar up` from `root`: resolves with the process, the UI's address and the agent's pid once "local" is up. */
function startUp(root, home) {
  const child = spawn(process.execPath, [join(root, 'electron', 'bin', 'hangar.js'), 'up'], {
    env: { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'warn', TMUX: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  };
  return new Promise((resolveUp, reject) => {
    let url;
    createInterface({ input: child.stdout }).on('line', (line) => {
      url ??= /(http:\/\/127\.0\.0\.1:\d+\/#token=\S+)/.exec(line)?.[1];
      const agent = /local stack up .*agent pid (\d+)/.exec(line);
      if (agent) resolveUp({ child, url, agent: Number(agent[1]), stop });
    });
    child.once('exit', (code) => reject(new Error(`hangar up exited with ${code} before the local stack was up`)));
  });
}

async function hangarUp(root, side) {
  const up = await startUp(root, scratchDir('up'));
  try {
    return rowsOf(
      `(b) ${side}`,
      await measure(() => [
        ['core (hangar up)', up.child.pid],
        ['embedded agent', up.agent],
      ]),
    );
  } finally {
    await up.stop();
  }
}

async function hangarUpWithUi(root, side) {
  const home = scratchDir('ui');
  const up = await startUp(root, home);
  const hangar = (...args) =>
    execFileSync(process.execPath, [join(root, 'electron', 'bin', 'hangar.js'), ...args], {
      env: { ...process.env, HANGAR_HOME: home, TMUX: '' },
      encoding: 'utf8',
    });
  let browser;
  try {
    hangar('session', 'new', 'local', '--name', 'idle', '--env', 'PS1=$ ', '--', 'bash', '--norc', '--noprofile');
    const tmuxPid = Number(
      execFileSync('tmux', ['-L', tmuxSocketNameOf(join(home, 'agent')), 'display-message', '-p', '#{pid}'], {
        encoding: 'utf8',
      }).trim(),
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(up.url);
    await page.evaluate((saved) => localStorage.setItem('hangar.tabs', JSON.stringify(saved)), {
      tabs: [{ id: 'idle', title: 'idle', panes: [{ host: 'local', session: 'idle' }] }],
      active: 'idle',
    });
    await page.reload();
    await page.locator('.xterm-rows').first().waitFor({ state: 'attached' });
    await page.waitForFunction(() => document.querySelectorAll('.terminal-overlay').length === 0, null, {
      timeout: 20_000,
    });
    const result = await measure(() => [
      ['core (hangar up)', up.child.pid],
      ['embedded agent', up.agent],
      ['tmux server', tmuxPid],
      ...chromiumsOfOurs().flatMap((pid) => tree('Chromium (all its processes)', pid)),
    ]);
    return rowsOf(`(c) ${side}`, result);
  } finally {
    await browser?.close();
    await up.stop();
    execFileSync('tmux', ['-L', tmuxSocketNameOf(join(home, 'agent')), 'kill-server'], { stdio: 'ignore' });
  }
}

try {
  const sides = BASELINE
    ? [
        [BASELINE, 'baseline'],
        [ROOT, 'this checkout'],
      ]
    : [[ROOT, 'this checkout']];
  const rows = [];
  const progress = (what) => process.stderr.write(`bench:idle: ${what} (${SETTLE_S} s settle + ${IDLE_S} s)…\n`);
  if (wanted('sshd')) {
    progress('sshd reference');
    rows.push(...(await sshdReference()));
  }
  if (wanted('tmux')) {
    progress('tmux reference');
    rows.push(...(await tmuxReference()));
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [root, name] of sides) {
      const side = ROUNDS > 1 ? `${name}, round ${round}` : name;
      if (wanted('agent')) {
        progress(`(a) standalone agent, ${side}`);
        rows.push(...(await standaloneAgent(root, side)));
      }
      if (wanted('up')) {
        progress(`(b) hangar up, ${side}`);
        rows.push(...(await hangarUp(root, side)));
      }
      if (wanted('ui')) {
        progress(`(c) hangar up + web UI + one terminal, ${side}`);
        rows.push(...(await hangarUpWithUi(root, side)));
      }
    }
  }
  printRows(
    `\nIdle cost over ${IDLE_S} s after ${SETTLE_S} s settling (load average ${loadAverage()}; CPU from schedstat, wake-ups = voluntary context switches):`,
    rows,
    '  ',
  );
} finally {
  await runCleanups(cleanups);
}
