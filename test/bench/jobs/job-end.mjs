#!/usr/bin/env node
// The agent's cost of a job's end: BENCH_JOB_END_JOBS trivial shell jobs (`true`), one after the
// other, against a reference build in the same run, alternating (BENCH_JOB_END_ROUNDS pairs):
// agent main-thread CPU per job (schedstat, ns) and the agent's event-loop delay (p99, max; a
// 1 ms timer's lateness, from a preloaded monitor). A job's end searches the process table for
// what the job left, so the machine gets BENCH_JOB_END_PROCS idle processes more (a host runs a
// few hundred). Not a test: it prints figures; it fails only if it breaks.
//
//   BENCH_REF_ROOT=/work/wt/other-build node test/bench/jobs/job-end.mjs
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANGAR, loadAverage, percentile, ROOT, sleep, startAgent } from '../support.mjs';

const JOBS = Number(process.env.BENCH_JOB_END_JOBS ?? 100);
const ROUNDS = Number(process.env.BENCH_JOB_END_ROUNDS ?? 2);
const PROCS = Number(process.env.BENCH_JOB_END_PROCS ?? 150);
const REF_ROOT = process.env.BENCH_REF_ROOT;

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-job-end-')));
const preload = join(import.meta.dirname, 'loop-delay.mjs');
const { HangarCore } = await import('@hangar/desktop/core');

const idle = Array.from({ length: PROCS }, () => spawn('sleep', ['3600'], { stdio: 'ignore' }));

/** Main-thread CPU of a process, ms (schedstat counts ns). */
function mainThreadMs(pid) {
  return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

async function loopDelay(child, file) {
  rmSync(file, { force: true });
  child.kill('SIGUSR2');
  for (let i = 0; i < 200 && !existsSync(file); i++) await sleep(10);
  await sleep(20);
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** One build's round: a fresh agent and host, JOBS trivial jobs one after the other. */
async function round(label, root, index) {
  const home = join(dir, `home-${index}`);
  const data = join(dir, `agent-${index}`);
  const env = { ...process.env, HANGAR_HOME: home, BENCH_LOOP_DELAY_FILE: join(dir, `delay-${index}.json`) };
  const bin = join(root, 'host-agent', 'bin', 'hangar-agent.js');
  process.env.BENCH_AGENT_NODE_FLAGS = `--import ${preload}`;
  const agent = await startAgent({ data, env, bin });
  const { code } = JSON.parse(
    execFileSync(process.execPath, [bin, 'pair', '--data', data, '--json'], { encoding: 'utf8' }),
  );
  execFileSync(process.execPath, [HANGAR, 'hosts', 'add', 'bench', agent.address, '--code', code], { env });
  const core = await HangarCore.open({ home });
  try {
    // Warm-up: the first jobs pay for loading code and opening files.
    for (let i = 0; i < 5; i++) await runJob(core);
    await loopDelay(agent.child, env.BENCH_LOOP_DELAY_FILE);
    const cpu0 = mainThreadMs(agent.child.pid);
    const began = performance.now();
    for (let i = 0; i < JOBS; i++) await runJob(core);
    const cpu = mainThreadMs(agent.child.pid) - cpu0;
    const wall = performance.now() - began;
    const delay = await loopDelay(agent.child, env.BENCH_LOOP_DELAY_FILE);
    return { label, cpuPerJob: cpu / JOBS, wallPerJob: wall / JOBS, ...delay };
  } finally {
    await core.dispose();
    agent.child.kill('SIGTERM');
    await new Promise((resolve) => agent.child.once('exit', resolve));
  }
}

const FINAL = ['succeeded', 'failed', 'cancelled', 'timed_out', 'lost'];

/** Submits `true` and resolves at its end (its event; a missed one costs a poll a second, not a hang). */
async function runJob(core) {
  let ended;
  const end = new Promise((resolve) => (ended = resolve));
  let id;
  const sub = core.connection('bench').on('job.updated', ({ job }) => {
    if (job.id === id && FINAL.includes(job.state)) ended();
  });
  try {
    id = (await core.jobs.submit('bench', { command: 'true', executor: 'shell' })).id;
    for (;;) {
      if ((await Promise.race([end.then(() => true), sleep(1000).then(() => false)])) === false) {
        if (!FINAL.includes((await core.jobs.get('bench', id)).state)) continue;
      }
      const detail = await core.jobs.get('bench', id);
      if (detail.state !== 'succeeded') throw new Error(`job ${id} ${detail.state}`);
      return;
    }
  } finally {
    sub.dispose();
  }
}

const results = [];
try {
  const processes = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).length;
  console.log(`job end: ${JOBS} trivial jobs per round, ${processes} processes on the machine, load ${loadAverage()}`);
  let index = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const order =
      r % 2 === 0
        ? [
            ['ref', REF_ROOT],
            ['this', ROOT],
          ]
        : [
            ['this', ROOT],
            ['ref', REF_ROOT],
          ];
    for (const [label, root] of order) {
      if (!root) continue;
      const result = await round(label, root, index++);
      results.push(result);
      console.log(
        `  ${label.padEnd(4)} main-thread CPU/job ${result.cpuPerJob.toFixed(2)} ms, wall/job ${result.wallPerJob.toFixed(1)} ms, ` +
          `loop delay p50 ${result.p50.toFixed(2)} p99 ${result.p99.toFixed(2)} max ${result.max.toFixed(2)} ms, load ${loadAverage()}`,
      );
    }
  }
  for (const label of ['ref', 'this']) {
    const mine = results.filter((result) => result.label === label);
    if (mine.length === 0) continue;
    const median = (key) =>
      percentile(
        mine.map((result) => result[key]),
        50,
      ).toFixed(2);
    console.log(
      `median ${label}: CPU/job ${median('cpuPerJob')} ms, loop delay p99 ${median('p99')} ms, max ${median('max')} ms`,
    );
  }
} finally {
  for (const child of idle) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
