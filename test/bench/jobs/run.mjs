#!/usr/bin/env node
// Jobs benchmark: dispatch latency (submit → the job's process running), first log byte, jobs/s, log throughput against a local pipe,
// log latency, and how fast a cancelled job's processes are gone. Uses the built packages and a
// real agent process on loopback. Not a test: it prints numbers next to the issue's targets and
// the reference measured in the same run; it fails only if it breaks.
//
// To compare two builds, run it alternately against a copy of the other build's output:
// BENCH_AGENT_BIN=<copy>/host-agent/bin/hangar-agent.js BENCH_CORE_MODULE=<copy>/electron/core/dist/index.js
// (the copy under node_modules/ of this checkout, so its imports resolve).
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { startSshd } from '../terminal/keystrokes.mjs';
import { buildFloor, floorTransfer } from './floor.mjs';
import { AGENT, cpuMs, HANGAR, loadAverage, percentile, sleep, startAgent } from '../support.mjs';

const { HangarCore, CoreApiServer, LocalDoor, nodePlatform } = await import(
  process.env.BENCH_CORE_MODULE ?? '@hangar/desktop/core'
);

const DISPATCH_RUNS = Number(process.env.BENCH_DISPATCH ?? 50);
const MANY_JOBS = Number(process.env.BENCH_JOBS ?? 500);
const LOG_MB = Number(process.env.BENCH_LOG_MB ?? 200);
const LATENCY_LINES = Number(process.env.BENCH_LATENCY_LINES ?? 200);
const CANCEL_GRACE_MS = 10_000;

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-jobs-')));
const home = join(dir, 'home');
const data = join(dir, 'agent');
const env = { ...process.env, HANGAR_HOME: home };
const exec = promisify(execFile);

const agent = await startAgent({ data, env, bin: process.env.BENCH_AGENT_BIN ?? AGENT });
const { code } = JSON.parse(
  execFileSync(process.execPath, [AGENT, 'pair', '--data', data, '--json'], { encoding: 'utf8' }),
);
execFileSync(process.execPath, [HANGAR, 'hosts', 'add', 'bench', agent.address, '--code', code], { env });
const core = await HangarCore.open({ home });
// The running app's door: `hangar logs --follow` reaches this core over $HANGAR_HOME/core.sock.
const doorApi = new CoreApiServer(core, nodePlatform(core.logger), { live: false });
const door = await LocalDoor.start({ api: doorApi, home, logger: core.logger });
const HOST = 'bench';
const jobs = core.jobs;
const rows = [];
const row = (metric, measured, target, ok, note = '') => rows.push({ metric, measured, target, ok, note });

/** Follows the job's first attempt to its end, handing each chunk of its log to `onData` as it arrives. */
function followLog(job, onData) {
  return jobs.followLogs(
    HOST,
    job.id,
    { attempt: 1, follow: true },
    {
      data: (chunk, consumed) => {
        onData(chunk.data);
        consumed();
      },
    },
  );
}

/**
 * Submits a job whose command prints the wall clock the moment it runs, and resolves when its
 * first log byte reaches this client. Dispatch is submit → the job's process running (its own
 * clock reading, `date` included), not the answer to submit (the job then is only queued).
 */
async function timeFirstByte(executor) {
  const began = performance.now();
  const job = await jobs.submit(HOST, { command: 'date +%s%N', executor });
  let first;
  let output = '';
  await followLog(job, (data) => {
    first ??= performance.now();
    output += new TextDecoder().decode(data);
  });
  const startedNs = /^(\d{19})$/m.exec(output)?.[1];
  if (!startedNs) throw new Error(`the job printed no clock reading: ${JSON.stringify(output.slice(0, 80))}`);
  // Both clocks are this machine's wall clock: the job's from `date`, ours from timeOrigin.
  const startedMs = Number(BigInt(startedNs) / 1000n) / 1000 - performance.timeOrigin;
  return { dispatch: startedMs - began, firstByte: first - began };
}

async function dispatchBench(executor, firstByteTarget) {
  try {
    await timeFirstByte(executor); // warm-up: first use of the executor
  } catch (error) {
    row(`dispatch p50 (${executor})`, 'skipped', '≤ 20 ms', '-', error.message.slice(0, 70));
    return;
  }
  const dispatch = [];
  const firstByte = [];
  for (let i = 0; i < DISPATCH_RUNS; i++) {
    const t = await timeFirstByte(executor);
    dispatch.push(t.dispatch);
    firstByte.push(t.firstByte);
  }
  const d50 = percentile(dispatch, 50);
  const f50 = percentile(firstByte, 50);
  row(
    `dispatch p50 / p99 (${executor})`,
    `${d50.toFixed(1)} / ${percentile(dispatch, 99).toFixed(1)} ms`,
    '≤ 20 ms',
    d50 <= 20,
  );
  row(
    `first log byte p50 / p99 (${executor})`,
    `${f50.toFixed(1)} / ${percentile(firstByte, 99).toFixed(1)} ms`,
    `≤ ${firstByteTarget} ms`,
    f50 <= firstByteTarget,
  );
}

async function manyJobs() {
  const pending = new Map();
  const sub = core.connection(HOST).on('job.updated', ({ job }) => {
    if (['succeeded', 'failed', 'cancelled', 'timed_out', 'lost'].includes(job.state)) pending.get(job.id)?.();
  });
  const began = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < MANY_JOBS) {
      next++;
      const job = await jobs.submit(HOST, { command: 'true', executor: 'shell' });
      await Promise.race([
        new Promise((r) => pending.set(job.id, r)),
        // A missed event costs a poll, not a hang.
        (async () => {
          for (;;) {
            await sleep(1000);
            const detail = await jobs.get(HOST, job.id);
            if (['succeeded', 'failed', 'cancelled', 'timed_out', 'lost'].includes(detail.state)) return;
          }
        })(),
      ]);
      pending.delete(job.id);
      const detail = await jobs.get(HOST, job.id);
      if (detail.state !== 'succeeded') failed++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  sub.dispose();
  const seconds = (performance.now() - began) / 1000;
  const rate = MANY_JOBS / seconds;
  row(
    `${MANY_JOBS} trivial jobs end to end`,
    `${rate.toFixed(1)} jobs/s`,
    '≥ 50 jobs/s',
    rate >= 50,
    failed ? `${failed} not succeeded` : '',
  );
}

/** Seconds a shell command takes, and the CPU time (ms) it used (GNU time's user + system). */
async function timeShell(command) {
  const began = performance.now();
  const { stdout, stderr } = await exec('/usr/bin/time', ['-f', 'cpu %U %S', 'sh', '-c', command]);
  const [, user, system] = /cpu (\S+) (\S+)\s*$/.exec(stderr) ?? [];
  return { seconds: (performance.now() - began) / 1000, stdout, cpuMs: (Number(user) + Number(system)) * 1000 };
}

/**
 * CPU time (ms) of a process's main thread: the JavaScript thread, where the link's TLS, framing
 * and the jobs code run. The rest of the process's CPU is the collector's and the thread pool's.
 */
function mainThreadCpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** Collections in the core (this process) so far: scavenges and mark-compacts, and ms spent in them. */
const gcs = { minor: 0, major: 0, ms: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    if (entry.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++;
    gcs.ms += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** CPU (ms) the core (this process) and the agent use while `work` runs, and their main threads'. */
async function measureCpu(work) {
  const pids = [process.pid, agent.child.pid];
  const gc0 = { ...gcs };
  const core0 = cpuMs('self');
  const agent0 = cpuMs(agent.child.pid);
  const [coreMain0, agentMain0] = pids.map(mainThreadCpuMs);
  const result = await work();
  const [coreMain, agentMain] = pids.map(mainThreadCpuMs);
  return {
    result,
    coreMs: cpuMs('self') - core0,
    agentMs: cpuMs(agent.child.pid) - agent0,
    coreMainMs: coreMain - coreMain0,
    agentMainMs: agentMain - agentMain0,
    gc: { minor: gcs.minor - gc0.minor, major: gcs.major - gc0.major, ms: gcs.ms - gc0.ms },
  };
}

/**
 * Load-independent figures for a bulk transfer of `mb` MB, from the medians of the runs' CPU
 * samples (`cpu.core`, `cpu.agent`, `cpu.coreMain`, `cpu.agentMain` and `cpu[reference]`): CPU ms
 * per MB on each end, and the rate the busier end allows with a core to itself (core and agent run
 * in parallel), beside the reference command's own CPU per MB and rate on a free core.
 */
function cpuNote(cpu, reference, mb) {
  const [c, a, r, cm, am] = ['core', 'agent', reference, 'coreMain', 'agentMain'].map(
    (key) => percentile(cpu[key], 50) / mb,
  );
  return (
    `CPU per MB: core ${c.toFixed(2)} ms (main thread ${cm.toFixed(2)}) + agent ${a.toFixed(2)} ms (main thread ${am.toFixed(2)}) ` +
    `vs ${r.toFixed(2)} ms for the reference; ` +
    `CPU-bound rates: ${(1000 / Math.max(c, a)).toFixed(0)} vs ${(1000 / r).toFixed(0)} MB/s (${(r / Math.max(c, a)).toFixed(2)}×)`
  );
}

/** The core's collections over all runs of a row, per 100 MB received. */
function gcNote(gcList, mb) {
  const sum = (key) => gcList.reduce((total, gc) => total + gc[key], 0);
  const per = (value) => ((value * 100) / (mb * gcList.length)).toFixed(1);
  return `core GC per 100 MB: ${per(sum('major'))} mark-compacts, ${per(sum('minor'))} scavenges, ${per(sum('ms'))} ms`;
}

/** Seconds from submit until a follower has all of the job's log; and how long the job itself ran. */
async function followedSeconds(command, bytes) {
  const job = await jobs.submit(HOST, { command, executor: 'shell' });
  const began = performance.now();
  let received = 0;
  await followLog(job, (data) => (received += data.length));
  const seconds = (performance.now() - began) / 1000;
  if (received !== bytes) throw new Error(`follower received ${received} of ${bytes} bytes`);
  const detail = await jobs.get(HOST, job.id);
  return { seconds, jobSeconds: (detail.attempts.at(-1)?.timings.run ?? NaN) / 1000 };
}

/**
 * To look into the command: BENCH_CLI_NODE_FLAGS, node flags for it (`--cpu-prof --cpu-prof-dir=/tmp/prof`);
 * BENCH_CLI_PREFIX, a command to run it under (`strace -f -c -o /tmp/calls`).
 */
const CLI_NODE_FLAGS = process.env.BENCH_CLI_NODE_FLAGS ?? '';
const CLI_PREFIX = process.env.BENCH_CLI_PREFIX ?? '';

/**
 * The user's path: `hangar logs <job> --follow > file`, through this core's door (the log crosses
 * the host link into the core, then the door's stream to the command, which writes it out). Seconds
 * from submit until the command has exited with the whole log in the file, and the command's CPU
 * (ms) and mark-compacts (gc-count.cjs; observed entries may miss the last collection before exit).
 */
async function cliFollowedSeconds(command, bytes) {
  const out = join(dir, 'log-cli');
  const job = await jobs.submit(HOST, { command, executor: 'shell' });
  const began = performance.now();
  const cli = await timeShell(
    `HANGAR_HOME=${home} HANGAR_DEBUG=1 ${CLI_PREFIX} ${process.execPath} --require ${join(import.meta.dirname, 'gc-count.cjs')} ${CLI_NODE_FLAGS} ${HANGAR} logs ${job.id} --host ${HOST} --follow > ${out} 2> ${out}.gc`,
  ).catch((error) => {
    throw new Error(
      `hangar logs --follow failed (${error.message.split('\n')[0]}): ${readFileSync(`${out}.gc`, 'utf8')
        .replace(/^\[.*\n/gm, '')
        .slice(0, 1500)}`,
    );
  });
  const seconds = (performance.now() - began) / 1000;
  const trace = readFileSync(`${out}.gc`, 'utf8');
  const size = statSync(out).size;
  // The command ends a log that does not end a line with a newline of its own.
  if (size !== bytes && size !== bytes + 1) {
    throw new Error(`hangar logs --follow wrote ${size} of ${bytes} bytes: ${trace.slice(-300)}`);
  }
  // Byte for byte what the same command wrote to a local file (the reference's run just before).
  await exec('cmp', ['-n', String(bytes), out, join(dir, 'log-local')]);
  if (!trace.includes(`core running on this computer (pid ${process.pid},`))
    throw new Error(`hangar logs did not use this core's door: ${trace.slice(0, 300)}`);
  rmSync(out, { force: true });
  const counted = /gc-count (\d+)/.exec(trace);
  if (!counted) throw new Error(`hangar logs --follow did not say its collections: ${trace.slice(-300)}`);
  return { seconds, cliMs: cli.cpuMs, cliMajor: Number(counted[1]) };
}

/**
 * `hangar logs <job> --follow > file` with a core of its own (HANGAR_LOCAL_DOOR=off, as without the
 * app): its own direct link to the agent, and on it a lane (lane/PROTOCOL.md, "Purposes: log")
 * whose relay writes the log to the file; with `lanes: false` (HANGAR_LANES=off) the same command
 * on the link's mux, the path it took before lanes. Seconds from submit until the command exited
 * with the whole log written, and the command's CPU (ms). BENCH_CLI_BIN: another build's command.
 */
async function cliOwnLinkSeconds(command, bytes, lanes, compare = join(dir, 'log-local')) {
  const out = join(dir, 'log-cli-own');
  const job = await jobs.submit(HOST, { command, executor: 'shell' });
  const began = performance.now();
  // The file's size, looked at every 2 ms: when its first byte and its last landed.
  let first;
  let last;
  const watch = setInterval(() => {
    const now = performance.now();
    const size = statSync(out, { throwIfNoEntry: false })?.size ?? 0;
    if (size > 0) first ??= now;
    if (size >= bytes) last ??= now;
  }, 2);
  const cli = await timeShell(
    `HANGAR_HOME=${home} HANGAR_LOCAL_DOOR=off ${lanes ? '' : 'HANGAR_LANES=off '}${process.execPath} ` +
      `${process.env.BENCH_CLI_BIN ?? HANGAR} logs ${job.id} --host ${HOST} --follow > ${out} 2> ${out}.err`,
  )
    .catch((error) => {
      throw new Error(`hangar logs --follow (own link) failed: ${readFileSync(`${out}.err`, 'utf8').slice(0, 1500)}`);
    })
    .finally(() => clearInterval(watch));
  const seconds = (performance.now() - began) / 1000;
  const size = statSync(out).size;
  if (size !== bytes && size !== bytes + 1)
    throw new Error(`hangar logs --follow (own link) wrote ${size} of ${bytes} bytes`);
  await exec('cmp', ['-n', String(bytes), out, compare]);
  rmSync(out, { force: true });
  // First byte to last: the log's own rate, without the command's start, link and the job's start.
  return {
    seconds,
    cliMs: cli.cpuMs,
    streamSeconds: first !== undefined && last > first ? (last - first) / 1000 : NaN,
    // Submit → the file's first byte, and its last byte → the command's exit (ms).
    before: first - began,
    after: began + seconds * 1000 - last,
  };
}

/**
 * The fixed cost of `hangar logs --follow > file` with a core of its own: submit to exit and the
 * command's CPU for a 1-byte log (node's start, the bundle, the link's handshake, the job's start),
 * on a lane. What a bigger log costs past that is its per-byte cost.
 */
async function cliOwnLinkFixed() {
  writeFileSync(join(dir, 'log-one'), 'x');
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await cliOwnLinkSeconds('printf x', 1, true, join(dir, 'log-one')));
  return {
    seconds: percentile(
      runs.map((r) => r.seconds),
      50,
    ),
    cliMs: percentile(
      runs.map((r) => r.cliMs),
      50,
    ),
  };
}

// BENCH_LOG_CLI=off leaves out the rows of `hangar logs --follow` through the door.
const wantCli = process.env.BENCH_LOG_CLI !== 'off';
// BENCH_LOG_CLI_OWN=off leaves out the rows of `hangar logs --follow` with a core of its own (lane and mux).
const wantOwn = process.env.BENCH_LOG_CLI_OWN !== 'off';
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 3);

async function throughput() {
  const bytes = LOG_MB * 1000 * 1000;
  const sample = join(dir, 'log-sample');
  const commands = {
    // The issue's workload: text that compresses well, as build logs do.
    text: `yes hangar-log-throughput | head -c ${bytes}`,
    // Worst case for the compressed log stream: bytes that do not compress at all.
    random: `cat ${sample} ${sample} ${sample} ${sample} | head -c ${bytes}`,
  };
  execFileSync('sh', ['-c', `head -c ${Math.ceil(bytes / 4)} /dev/urandom > ${sample}`]);
  // Alternate references and Hangar, report medians: 2 cores make single runs noisy.
  for (const [name, command] of Object.entries(commands)) {
    if (process.env.BENCH_LOG_KIND && name !== process.env.BENCH_LOG_KIND) continue;
    const pipe = [];
    const file = [];
    const ours = [];
    const job = [];
    const cpu = { core: [], agent: [], coreMain: [], agentMain: [], file: [] };
    const gcList = [];
    const viaCli = [];
    const cliCpu = { core: [], agent: [], coreMain: [], agentMain: [], cli: [], file: cpu.file };
    const cliGc = [];
    const cliMajor = [];
    // The command with a core of its own: on a lane and on the mux (HANGAR_LANES=off), alternated.
    const own = {
      lane: { rates: [], agent: [], cli: [], stream: [], edges: [] },
      mux: { rates: [], agent: [], cli: [], stream: [], edges: [] },
    };
    const fixed = wantOwn ? await cliOwnLinkFixed() : undefined;
    for (let run = 0; run < THROUGHPUT_RUNS; run++) {
      const piped = await timeShell(`${command} | wc -c`);
      if (Number(piped.stdout.trim()) !== bytes) throw new Error(`local pipe gave ${piped.stdout}`);
      pipe.push(LOG_MB / piped.seconds);
      const written = await timeShell(`${command} > ${join(dir, 'log-local')}`);
      file.push(LOG_MB / written.seconds);
      cpu.file.push(written.cpuMs);
      // The agent's CPU includes the job's command (a child of the agent is not counted: its own process).
      const measured = await measureCpu(() => followedSeconds(command, bytes));
      const followed = measured.result;
      for (const key of ['core', 'agent', 'coreMain', 'agentMain']) cpu[key].push(measured[`${key}Ms`]);
      gcList.push(measured.gc);
      ours.push(LOG_MB / followed.seconds);
      job.push(LOG_MB / followed.jobSeconds);
      if (wantCli) {
        const measuredCli = await measureCpu(() => cliFollowedSeconds(command, bytes));
        for (const key of ['core', 'agent', 'coreMain', 'agentMain']) cliCpu[key].push(measuredCli[`${key}Ms`]);
        cliCpu.cli.push(measuredCli.result.cliMs);
        cliMajor.push(measuredCli.result.cliMajor);
        cliGc.push(measuredCli.gc);
        viaCli.push(LOG_MB / measuredCli.result.seconds);
      }
      if (wantOwn) {
        const order = run % 2 === 0 ? ['lane', 'mux'] : ['mux', 'lane'];
        for (const way of order) {
          const measuredOwn = await measureCpu(() => cliOwnLinkSeconds(command, bytes, way === 'lane'));
          own[way].rates.push(LOG_MB / measuredOwn.result.seconds);
          own[way].agent.push(measuredOwn.agentMs);
          own[way].cli.push(measuredOwn.result.cliMs);
          own[way].stream.push(LOG_MB / measuredOwn.result.streamSeconds);
          own[way].edges.push(`${measuredOwn.result.before.toFixed(0)} + ${measuredOwn.result.after.toFixed(0)}`);
        }
      }
    }
    const [p, f, o, j] = [pipe, file, ours, job].map((rates) => percentile(rates, 50));
    // Issue 16: a log is persisted on the host as it streams, so the same command writing to a
    // local file bounds it; a follower should get at least 0.9× that (the pipe is for reference).
    const ratio = o / f;
    row(
      `log throughput (${LOG_MB} MB ${name} to a follower)`,
      `${o.toFixed(0)} MB/s vs ${f.toFixed(0)} MB/s to a local file (${ratio.toFixed(2)}×)`,
      '≥ 0.9× local file',
      ratio >= 0.9,
      `medians of ${THROUGHPUT_RUNS}; the same command piped to wc -c: ${p.toFixed(0)} MB/s ` +
        `(${(o / p).toFixed(2)}× the pipe); the job itself, writing its log while followed: ${j.toFixed(0)} MB/s; ` +
        cpuNote(cpu, 'file', LOG_MB) +
        `; ${gcNote(gcList, LOG_MB)}`,
    );
    if (wantOwn) {
      for (const way of ['lane', 'mux']) {
        const m = percentile(own[way].rates, 50);
        const list = (values) => values.map((v) => v.toFixed(0)).join(', ');
        row(
          `log throughput (${LOG_MB} MB ${name}, hangar logs --follow > file, own link, ${way === 'lane' ? 'a lane' : 'the mux (HANGAR_LANES=off)'})`,
          `${m.toFixed(0)} MB/s vs ${f.toFixed(0)} MB/s to a local file (${(m / f).toFixed(2)}×)`,
          '≥ 0.9× local file',
          m / f >= 0.9,
          `medians of ${THROUGHPUT_RUNS}, alternated with the other way; rates ${list(own[way].rates)} MB/s submit to exit, ` +
            `${list(own[way].stream)} MB/s from the file's first byte to its last (median ${percentile(own[way].stream, 50).toFixed(0)}, ` +
            `${(percentile(own[way].stream, 50) / f).toFixed(2)}×; ms from submit to the first byte + from the last to exit: ` +
            `${own[way].edges.join(', ')}); a 1-byte log takes ${(fixed.seconds * 1000).toFixed(0)} ms ` +
            `submit to exit and ${fixed.cliMs.toFixed(0)} ms of the command's CPU (on a lane); CPU per MB: ` +
            `command ${(percentile(own[way].cli, 50) / LOG_MB).toFixed(2)} ms (${((percentile(own[way].cli, 50) - fixed.cliMs) / LOG_MB).toFixed(2)} past the 1-byte log's) ` +
            `+ agent ${(percentile(own[way].agent, 50) / LOG_MB).toFixed(2)} ms ` +
            `vs ${(percentile(cpu.file, 50) / LOG_MB).toFixed(2)} ms for the reference`,
        );
      }
    }
    if (!wantCli) continue;
    const c = percentile(viaCli, 50);
    const perMb = (key) => (percentile(cliCpu[key], 50) / LOG_MB).toFixed(2);
    row(
      `log throughput (${LOG_MB} MB ${name}, hangar logs --follow > file)`,
      `${c.toFixed(0)} MB/s vs ${f.toFixed(0)} MB/s to a local file (${(c / f).toFixed(2)}×)`,
      '≥ 0.9× local file',
      c / f >= 0.9,
      `medians of ${THROUGHPUT_RUNS}, submit → the command exited with the whole log written, through this core's door; ` +
        `CPU per MB: core ${perMb('core')} ms (main thread ${perMb('coreMain')}) + command ${perMb('cli')} ms + ` +
        `agent ${perMb('agent')} ms vs ${perMb('file')} ms for the reference; ` +
        `${gcNote(cliGc, LOG_MB)}; the command's mark-compacts per 100 MB: ` +
        `${((cliMajor.reduce((a, b) => a + b, 0) * 100) / (LOG_MB * cliMajor.length)).toFixed(1)}`,
    );
  }
  rmSync(sample, { force: true });
}

/**
 * An artifact of incompressible bytes, downloaded through the link into a local folder (written,
 * hashed, renamed), against copying the same file to a local file: the persist bound (issue 16).
 * Beside it the floor (floor.mjs): the same bytes sent from one process to another over loopback,
 * written and sha256-checked, with no Hangar in it; over TLS 1.3 with the lane's AES-256-GCM and
 * over plain TCP. BENCH_ARTIFACT_FLOOR=off leaves the floor out (it needs gcc and libssl-dev).
 */
async function artifactBench() {
  const bytes = LOG_MB * 1000 * 1000;
  const sample = join(dir, 'artifact-sample');
  execFileSync('sh', ['-c', `head -c ${bytes} /dev/urandom > ${sample}`]);
  const job = await jobs.submit(HOST, {
    command: `mkdir -p out && cp ${sample} out/blob.bin`,
    executor: 'shell',
    artifacts: ['out/blob.bin'],
  });
  const final = await jobs.waitForFinal(HOST, job.id);
  if (final.state !== 'succeeded') throw new Error(`artifact job ${final.state}`);
  const local = [];
  const ours = [];
  const overSsh = [];
  const cpu = { core: [], agent: [], coreMain: [], agentMain: [], local: [] };
  const gcList = [];
  // What a user would do instead: copy the file over ssh (cat on the host, written here).
  const sshd = await startSshd(dir);
  // One connection for every copy (ControlMaster), as the link is: no key exchange in the timing.
  const ssh = sshd.command
    ?.filter((arg) => arg !== '-tt')
    .concat(['-o', 'ControlMaster=auto', '-o', `ControlPath=${join(dir, 'ssh-control')}`, '-o', 'ControlPersist=60'])
    .join(' ');
  if (ssh) await timeShell(`${ssh} true`);
  let floor;
  let floorReason = '';
  if (process.env.BENCH_ARTIFACT_FLOOR !== 'off') {
    try {
      floor = buildFloor(dir);
    } catch (error) {
      floorReason = `floor.c did not build (${String(error.stderr ?? error.message)
        .split('\n')[0]
        .slice(0, 80)}; apt-get install gcc libssl-dev)`;
    }
  }
  const floors = { tls: { rates: [], sender: [], receiver: [] }, tcp: { rates: [], sender: [], receiver: [] } };
  let floorCipher = '';
  const expected = execFileSync('sha256sum', [sample], { encoding: 'utf8' }).split(' ')[0];
  for (let run = 0; run < THROUGHPUT_RUNS; run++) {
    const copied = await timeShell(`cat ${sample} > ${join(dir, 'artifact-local')}`);
    local.push(LOG_MB / copied.seconds);
    cpu.local.push(copied.cpuMs);
    if (ssh) overSsh.push(LOG_MB / (await timeShell(`${ssh} cat ${sample} > ${join(dir, 'artifact-ssh')}`)).seconds);
    // The floors and the download take turns at going first: the first 200 MB written after the
    // last round's files were removed can cost a few times more in the page cache (this VM's).
    const ways = [...(floor ? ['tls', 'tcp'] : []), 'hangar'];
    for (let i = 0; i < ways.length; i++) {
      const way = ways[(i + run) % ways.length];
      if (way !== 'hangar') {
        const mode = way;
        const out = join(dir, 'artifact-floor');
        const r = await floorTransfer({ floor, mode, file: sample, out });
        if (r.sha256 !== expected)
          throw new Error(`the ${mode} floor's sha256 ${r.sha256} is not the file's ${expected}`);
        if (mode === 'tls') floorCipher = r.cipher;
        floors[mode].rates.push(LOG_MB / r.seconds);
        floors[mode].sender.push(r.senderMs);
        floors[mode].receiver.push(r.receiverMs);
        rmSync(out, { force: true });
        continue;
      }
      const out = join(dir, `artifacts-${run}`);
      const began = performance.now();
      const measured = await measureCpu(() => jobs.downloadArtifacts(HOST, job.id, out));
      const { result } = measured;
      ours.push(LOG_MB / ((performance.now() - began) / 1000));
      for (const key of ['core', 'agent', 'coreMain', 'agentMain']) cpu[key].push(measured[`${key}Ms`]);
      gcList.push(measured.gc);
      const [got] = result;
      if (got.size !== bytes) throw new Error(`artifact of ${got.size} bytes, expected ${bytes}`);
      rmSync(out, { recursive: true, force: true });
    }
  }
  if (ssh) await timeShell(`${ssh} -O exit 2>/dev/null || true`);
  sshd.stop?.();
  const [l, o] = [local, ours].map((rates) => percentile(rates, 50));
  const s = overSsh.length > 0 ? percentile(overSsh, 50) : undefined;
  const f = floor ? { tls: percentile(floors.tls.rates, 50), tcp: percentile(floors.tcp.rates, 50) } : undefined;
  row(
    `artifact download (${LOG_MB} MB random)`,
    `${o.toFixed(0)} MB/s vs ${l.toFixed(0)} MB/s copied to a local file (${(o / l).toFixed(2)}×)`,
    '≥ 0.9× local file',
    o / l >= 0.9,
    `medians of ${THROUGHPUT_RUNS}; written, sha256-checked and renamed into place; ` +
      (s ? `ssh cat > file: ${s.toFixed(0)} MB/s (${(o / s).toFixed(2)}× ssh); ` : `ssh ${sshd.reason}; `) +
      (f
        ? `${(o / f.tls).toFixed(2)}× the TLS floor, ${(o / f.tcp).toFixed(2)}× the TCP floor (rows below); `
        : `no floor: ${floorReason || 'BENCH_ARTIFACT_FLOOR=off'}; `) +
      cpuNote(cpu, 'local', LOG_MB) +
      `; ${gcNote(gcList, LOG_MB)}`,
  );
  // The local copy's rate on a core of its own (its CPU per MB): what a loaded run's wall rates hide.
  const localBound = 1000 / (percentile(cpu.local, 50) / LOG_MB);
  for (const mode of f ? ['tls', 'tcp'] : []) {
    const [sender, receiver] = ['sender', 'receiver'].map((side) => percentile(floors[mode][side], 50) / LOG_MB);
    const ratio = f[mode] / l;
    // Two processes on two cores: at best their CPU per MB shared out evenly over both.
    const bound = 2000 / (sender + receiver);
    row(
      `artifact floor (${LOG_MB} MB random, ${mode === 'tls' ? `TLS 1.3 ${floorCipher}` : 'plain TCP'} + sha256, no Hangar)`,
      `${f[mode].toFixed(0)} MB/s vs ${l.toFixed(0)} MB/s copied to a local file (${ratio.toFixed(2)}×)`,
      'reference',
      '-',
      `medians of ${THROUGHPUT_RUNS}, alternated with the rows above; floor.c: two processes on loopback, 64 KiB reads and writes, ` +
        `written and sha256-checked (on a thread of its own) as a download is; rates ${floors[mode].rates.map((r) => r.toFixed(0)).join(', ')} MB/s; ` +
        `CPU per MB: sender ${sender.toFixed(2)} ms + receiver ${receiver.toFixed(2)} ms (Hangar: agent ` +
        `${(percentile(cpu.agent, 50) / LOG_MB).toFixed(2)} + core ${(percentile(cpu.core, 50) / LOG_MB).toFixed(2)}); ` +
        `CPU-bound: ${bound.toFixed(0)} MB/s with both cores to itself, ${(bound / localBound).toFixed(2)}× the local copy's ` +
        `${localBound.toFixed(0)} MB/s on one core` +
        (mode === 'tls' && f.tls < o ? `; Hangar's download ran ${(o / f.tls).toFixed(2)}× this floor` : '') +
        // Encryption only adds to it: the plain floor bounds any encrypted, checked transfer from below.
        (mode === 'tcp' && bound / localBound < 0.9
          ? `; even this floor, which any encrypted download pays too, cannot reach 0.9× the local copy with all of this machine's CPU: ` +
            `issue 16's target is not reachable here by a download checked end to end`
          : ''),
    );
  }
  rmSync(sample, { force: true });
}

async function logLatency() {
  // Each line is the wall-clock time the job wrote it; the follower compares with its own clock.
  const command = `i=0; while [ $i -lt ${LATENCY_LINES} ]; do date +%s%N; i=$((i+1)); sleep 0.01; done`;
  const job = await jobs.submit(HOST, { command, executor: 'shell' });
  const latencies = [];
  let partial = '';
  await followLog(job, (data) => {
    partial += Buffer.from(data).toString();
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) if (/^\d+$/.test(line)) latencies.push(Date.now() - Number(line) / 1e6);
  });
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  row(
    'log latency p50 / p99 (write → follower)',
    `${p50.toFixed(1)} / ${p99.toFixed(1)} ms`,
    'p99 ≤ 250 ms',
    p99 <= 250,
  );
}

async function cancelBench() {
  const marker = `sleep ${900 + (process.pid % 99)}`;
  const job = await jobs.submit(HOST, { command: `(${marker}) & ${marker}; wait`, executor: 'shell' });
  const running = async () =>
    (await exec('ps', ['-eo', 'args='])).stdout.split('\n').filter((l) => l.startsWith(marker)).length;
  while ((await running()) < 2) await sleep(20);
  const began = performance.now();
  await jobs.cancel(job.id, HOST);
  while ((await running()) > 0) await sleep(10);
  const gone = performance.now() - began;
  const final = await jobs.waitForFinal(HOST, job.id);
  row(
    'cancelled job: process group gone',
    `${gone.toFixed(0)} ms (job ${final.state})`,
    `≤ grace + 1 s (${(CANCEL_GRACE_MS + 1000) / 1000} s)`,
    gone <= CANCEL_GRACE_MS + 1000,
  );
}

// BENCH_ONLY=throughput,latency runs a subset (names: dispatch, many, throughput, artifacts, latency, cancel).
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (name) => only === undefined || only.includes(name);
try {
  if (wanted('dispatch')) {
    await dispatchBench('shell', 50);
    await dispatchBench('sandbox', 100);
  }
  if (wanted('many')) await manyJobs();
  if (wanted('throughput')) await throughput();
  if (wanted('artifacts')) await artifactBench();
  if (wanted('latency')) await logLatency();
  if (wanted('cancel')) await cancelBench();
} finally {
  const widths = ['metric', 'measured', 'target'].map((k) =>
    Math.max(k.length, ...rows.map((r) => String(r[k]).length)),
  );
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i] ?? 0)).join('  ');
  console.log(
    `\nhangar jobs benchmark (${new Date().toISOString()}, node ${process.version}, load average ${loadAverage()})\n`,
  );
  console.log(line(['metric', 'measured', 'target', 'ok']));
  for (const r of rows)
    console.log(
      line([r.metric, r.measured, r.target, r.ok === '-' ? '-' : r.ok ? 'yes' : 'NO']) +
        (r.note ? `  (${r.note})` : ''),
    );
  await door?.dispose();
  await doorApi.dispose();
  await core.dispose();
  agent.child.kill('SIGTERM');
  await new Promise((r) => agent.child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
