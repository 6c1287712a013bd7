#!/usr/bin/env node
// CLI benchmark (issue 18): how fast `hangar` answers, beside `node -e 0` measured in the same
// run, with no Hangar core running and with one running (`hangar ui`, reached over its local
// socket), against BENCH_CLI_HOSTS loopback agents (default 10). Also the first screen of
// `hangar attach` in a pty. Not a test: it prints medians, ratios and the issue's targets; it
// fails only if something breaks. BENCH_RUNS (default 10) runs per command, interleaved. Every
// time is the p50 (median) of its runs; "met" compares it with the issue's target (ratio targets
// against node -e 0 of the same phase; the ms targets are absolute, and beside them the margin
// over node -e 0 they leave where the issue set them: a listing +25 ms, attach's first screen +67).
// BENCH_CLI_BASELINE=<checkout> (e.g. /work/main, built): its `hangar` runs too, interleaved with
// this one's against the same hosts and core, each of its rows marked "(baseline)" — a busy machine
// moves both alike, so the ratio between them is the change. BENCH_CLI_ALONE=0 skips the phase
// with no core running (its columns then say "—"; the slow part of a run on a busy machine).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import * as pty from 'node-pty';
import { AGENT, HANGAR, percentile, startAgent } from '../support.mjs';
import { tmuxSocketNameOf } from '@hangar/shared';

const HOSTS = Number(process.env.BENCH_CLI_HOSTS ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const ATTACH_RUNS = Number(process.env.BENCH_ATTACH_RUNS ?? 5);
const exec = promisify(execFile);
const ALONE = process.env.BENCH_CLI_ALONE !== '0';
const BASELINE = process.env.BENCH_CLI_BASELINE
  ? join(realpathSync(process.env.BENCH_CLI_BASELINE), 'electron', 'bin', 'hangar.js')
  : undefined;

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-cli-')));
const home = join(dir, 'home');
const env = { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'warn' };
const agents = [];
let ui;

const median = (values) => percentile(values, 50);
const ms = (value) => `${value.toFixed(0)} ms`;

const cpuFile = join(dir, 'cpu');

/** Wall time, and the command's own CPU time (user + system, from GNU time): steadier on a busy machine. */
async function timeOnce(argv) {
  const began = performance.now();
  await exec('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, ...argv], { env });
  const wall = performance.now() - began;
  const [user, system] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { wall, cpu: (user + system) * 1000 };
}

/** Median wall and CPU time of each command, runs interleaved so that a busy moment hits all alike. */
async function measure(commands) {
  const times = new Map(commands.map(([name]) => [name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const [name, argv] of commands) times.get(name).push(await timeOnce(argv));
  }
  return new Map(
    [...times].map(([name, values]) => [
      name,
      { wall: median(values.map((v) => v.wall)), cpu: median(values.map((v) => v.cpu)) },
    ]),
  );
}

const node = (...args) => [process.execPath, ...args];
const hangar = (...args) => node(HANGAR, ...args);
const baseline = (...args) => node(BASELINE, ...args);
/** Each command, and after it the same with the baseline's hangar when there is one. */
const withBaseline = (commands) =>
  commands.flatMap(([name, argv]) =>
    BASELINE && argv[1] === HANGAR
      ? [
          [name, argv],
          [`${name} (baseline)`, baseline(...argv.slice(2))],
        ]
      : [[name, argv]],
  );

/** `hangar attach` in a pty: time from spawn until the session's marker line is on the screen. */
async function firstScreen(bins = [HANGAR]) {
  const values = new Map(bins.map((bin) => [bin, []]));
  for (let run = 0; run < ATTACH_RUNS; run++) {
    for (const bin of bins) await firstScreenOnce(bin, values.get(bin));
  }
  return bins.map((bin) => median(values.get(bin)));
}

async function firstScreenOnce(bin, values) {
  {
    const began = performance.now();
    const term = pty.spawn(process.execPath, [bin, 'attach', 'h0', 'work'], { cols: 100, rows: 30, env });
    let seen = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`attach showed no screen in 60 s: ${seen}`)), 60_000);
      term.onData((data) => {
        seen += data;
        if (seen.includes('bench-marker')) {
          clearTimeout(timer);
          values.push(performance.now() - began);
          resolve();
        }
      });
    });
    const exited = new Promise((resolve) => term.onExit(resolve));
    term.write('\x1d'); // the detach key
    await exited;
  }
}

/**
 * Told to every process hops() times (node --require): when the process started (its
 * performance.timeOrigin, wall clock) and when it began to exit (its 'exit' event), in the form of
 * HANGAR_DEBUG's marks, so that node -e 0 has the same marks as hangar.
 */
const exitMark = join(dir, 'exit-mark.cjs');
writeFileSync(
  exitMark,
  `process.on('exit', () => require('node:fs').writeSync(2, 'hangar: ' + performance.now().toFixed(1) + ' ms: exit event\\nhangar-bench: origin ' + performance.timeOrigin + '\\n'));\n`,
);

/**
 * The p50 of each HANGAR_DEBUG mark of each command (ms since its process started: node's own
 * start-up, then the command's code loaded, the core's greeting, its answer, its output written,
 * its 'exit' event), and from the spawn: when the process started (the exec and Node's own loading
 * before its clock starts) and when its parent saw it exit (after Node's teardown and the
 * kernel's). node -e 0 has the same first and last marks: the time between a listing's "exit
 * event" and its exit seen, and its start, are read against node -e 0's, which pays them too.
 */
async function hops(commands) {
  const marks = new Map(commands.map(([name]) => [name, new Map()]));
  const note = (seen, step, value) => seen.set(step, [...(seen.get(step) ?? []), value]);
  for (let run = 0; run < RUNS; run++) {
    for (const [name, argv] of commands) {
      const spawned = performance.timeOrigin + performance.now();
      const { stderr } = await exec(argv[0], ['--require', exitMark, ...argv.slice(1)], {
        env: { ...env, HANGAR_DEBUG: '1' },
      });
      const exited = performance.timeOrigin + performance.now();
      const seen = marks.get(name);
      const origin = Number(/^hangar-bench: origin ([\d.]+)$/m.exec(stderr)?.[1]);
      note(seen, 'started (from spawn)', origin - spawned);
      for (const [, at, step] of stderr.matchAll(/^hangar: ([\d.]+) ms: (.+)$/gm)) note(seen, step, Number(at));
      note(seen, 'exit seen (from spawn)', exited - spawned);
    }
  }
  // Columns in the order of a run: the start, the command's marks, its exit (node -e 0 has no marks between).
  const last = ['exit event', 'exit seen (from spawn)'];
  const steps = [
    ...new Set([...marks.values()].flatMap((seen) => [...seen.keys()]).filter((step) => !last.includes(step))),
    ...last,
  ];
  return [...marks].map(([name, seen]) => ({
    command: name,
    ...Object.fromEntries(steps.map((step) => [step, seen.has(step) ? ms(median(seen.get(step))) : ''])),
  }));
}

try {
  process.stderr.write(`starting ${HOSTS} agents and pairing them…\n`);
  for (let i = 0; i < HOSTS; i++) {
    const data = join(dir, `agent-${i}`);
    mkdirSync(data, { mode: 0o700 }); // as the agent wants it (it would tighten it, with a warning)
    const agent = await startAgent({ data, env });
    agents.push(agent);
    const { code } = JSON.parse(
      execFileSync(process.execPath, [AGENT, 'pair', '--data', data, '--json'], { encoding: 'utf8' }),
    );
    execFileSync(process.execPath, [HANGAR, 'hosts', 'add', `h${i}`, agent.address, '--code', code], { env });
  }
  execFileSync(
    process.execPath,
    [HANGAR, 'session', 'new', 'h0', '--name', 'work', '--env', 'PS1=bench-marker$ ', '--', 'bash', '--norc'],
    { env },
  );

  const quick = [
    ['node -e 0', node('-e', '0')],
    ['hangar --version', hangar('--version')],
    ['hangar --help', hangar('--help')],
  ];
  const listings = [
    ['hangar session ls', hangar('session', 'ls')],
    ['hangar jobs', hangar('jobs')],
    ['hangar hosts ls', hangar('hosts', 'ls')],
    ['hangar __complete attach ""', hangar('__complete', 'attach', '')],
  ];

  const commands = withBaseline([...quick, ...listings]);
  const bins = BASELINE ? [HANGAR, BASELINE] : [HANGAR];
  if (ALONE) process.stderr.write(`measuring with no core running (${RUNS} runs each)…\n`);
  const alone = ALONE ? await measure(commands) : undefined;
  const [aloneAttach, aloneAttachBaseline] = ALONE ? await firstScreen(bins) : [];

  process.stderr.write('starting a core (hangar ui) and waiting for its links to every host…\n');
  ui = spawn(process.execPath, [HANGAR, 'ui'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) =>
    createInterface({ input: ui.stdout }).on('line', (line) => line.includes('Hangar UI at') && resolve()),
  );
  for (;;) {
    const { stdout } = await exec(process.execPath, [HANGAR, 'hosts', 'ls', '--json'], { env });
    if (JSON.parse(stdout).every((host) => host.link === 'online')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const { stderr: door } = await exec(process.execPath, [HANGAR, 'session', 'ls'], {
    env: { ...env, HANGAR_DEBUG: '1' },
  });
  const doorLine =
    door.split('\n').find((line) => line.includes('using the Hangar core')) ?? '(the door was not used!)';
  process.stderr.write(`measuring with the core running (${RUNS} runs each)…\n`);
  const running = await measure(commands);
  const [runningAttach, runningAttachBaseline] = await firstScreen(bins);
  const hopRows = await hops([
    ['node -e 0', node('-e', '0')],
    ...withBaseline(listings.filter(([name]) => !name.includes('__complete'))),
  ]);

  const rows = [];
  const refAlone = alone?.get('node -e 0');
  const refRunning = running.get('node -e 0');
  const ratio = (value, ref) => `${(value / ref).toFixed(2)}×`;
  const over = (value, ref) => `${value >= ref ? '+' : '−'}${ms(Math.abs(value - ref))}`;
  // The issue's targets are absolute (100 ms for a listing, 150 ms for attach's first screen),
  // set where node -e 0 took 83 ms; on another machine, or a loaded one, read them as a margin
  // over node -e 0 in the same run: a listing within +LISTING_MARGIN_MS, the first screen within
  // +ATTACH_MARGIN_MS (150 − 83).
  const LISTING_MARGIN_MS = 25;
  const ATTACH_MARGIN_MS = 67;
  const targetOf = (name) =>
    name.startsWith('hangar --')
      ? '≤ 1.5× node -e 0'
      : name === 'node -e 0'
        ? 'reference'
        : name.includes('__complete')
          ? '(completion)'
          : `≤ 100 ms p50, or node -e 0 + ${LISTING_MARGIN_MS} ms (running)`;
  const verdict = (value, absolute, margin) =>
    `${value <= absolute ? 'yes' : 'no'} (${value - refRunning.wall <= margin ? 'yes' : 'no'} over node -e 0)`;
  const metOf = (name, r) =>
    name.startsWith('hangar --')
      ? r.wall / refRunning.wall <= 1.5 && (!alone || alone.get(name).wall / refAlone.wall <= 1.5)
        ? 'yes'
        : 'no'
      : targetOf(name).startsWith('≤ 100 ms')
        ? verdict(r.wall, 100, LISTING_MARGIN_MS)
        : '';
  /** This build's p50 over the baseline's, core running (wall and cpu), on this build's rows. */
  const vsBaseline = (name, wall, cpu) => {
    if (!BASELINE || name.endsWith('(baseline)')) return {};
    const base =
      name === 'hangar attach: first screen' ? { wall: runningAttachBaseline } : running.get(`${name} (baseline)`);
    if (!base) return { 'vs baseline (running)': '' };
    return {
      'vs baseline (running)': `wall ${ratio(wall, base.wall)}${cpu !== undefined ? `, cpu ${ratio(cpu, base.cpu)}` : ''}`,
    };
  };
  for (const [name] of commands) {
    const a = alone?.get(name);
    const r = running.get(name);
    rows.push({
      command: name,
      'no core: p50 wall': a ? `${ms(a.wall)} (${ratio(a.wall, refAlone.wall)})` : '—',
      'no core: p50 cpu': a ? `${ms(a.cpu)} (${ratio(a.cpu, refAlone.cpu)})` : '—',
      'core running: p50 wall': `${ms(r.wall)} (${ratio(r.wall, refRunning.wall)}, ${over(r.wall, refRunning.wall)})`,
      'core running: p50 cpu': `${ms(r.cpu)} (${ratio(r.cpu, refRunning.cpu)})`,
      target: targetOf(name),
      met: metOf(name, r),
      ...vsBaseline(name, r.wall, r.cpu),
    });
  }
  const attachRow = (name, aloneValue, runningValue) => ({
    command: name,
    'no core: p50 wall': aloneValue !== undefined ? `${ms(aloneValue)} (${ratio(aloneValue, refAlone.wall)})` : '—',
    'no core: p50 cpu': '',
    'core running: p50 wall': `${ms(runningValue)} (${ratio(runningValue, refRunning.wall)}, ${over(runningValue, refRunning.wall)})`,
    'core running: p50 cpu': '',
    target: `≤ 150 ms, or node -e 0 + ${ATTACH_MARGIN_MS} ms (running)`,
    met: verdict(runningValue, 150, ATTACH_MARGIN_MS),
    ...vsBaseline(name, runningValue),
  });
  rows.push(attachRow('hangar attach: first screen', aloneAttach, runningAttach));
  if (BASELINE)
    rows.push(attachRow('hangar attach: first screen (baseline)', aloneAttachBaseline, runningAttachBaseline));
  console.log(
    `\nhangar CLI, ${HOSTS} loopback hosts, median of ${RUNS} runs (attach: ${ATTACH_RUNS}); node ${process.version}; ` +
      `load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs. Times are p50; in brackets: the ratio to node -e 0 in the same phase (and, with a core running, the time above it). met: the absolute target, and in brackets the margin over node -e 0.\n` +
      `core running: ${doorLine.trim()}` +
      (BASELINE ? `\nbaseline: ${BASELINE}, interleaved run by run with this build's` : ''),
  );
  console.table(rows);
  console.log(
    '\nWhere a listing spends its time with the core running (HANGAR_DEBUG marks, ms since its process started, and from its spawn the start and the exit seen by its parent; p50 of each; node -e 0 with the same first and last marks):',
  );
  console.table(hopRows);
} finally {
  ui?.kill('SIGTERM');
  if (ui) await new Promise((resolve) => (ui.exitCode !== null ? resolve() : ui.once('exit', resolve)));
  for (const agent of agents) agent.child.kill('SIGTERM');
  await Promise.all(
    agents.map(
      (a) => new Promise((resolve) => (a.child.exitCode !== null ? resolve() : a.child.once('exit', resolve))),
    ),
  );
  // The tmux server of h0's session (the agents' socket name is a hash of their data dir).
  const socket = tmuxSocketNameOf(join(dir, 'agent-0'));
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // No server: the session was never made.
  }
  rmSync(dir, { recursive: true, force: true });
}
