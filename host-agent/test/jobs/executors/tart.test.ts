import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TartExecutor, type TartExecutorOptions } from '../../../src/jobs/executors/tart.js';
import type { ExecutionRequest, TimingPhase } from '../../../src/jobs/executors/types.js';
import { killQuietly, processesMatching, uniqueSleep } from '../../../../test/support/until.js';
import { executionRequest } from './execution-request.mjs';
import { fileOutput } from './output.js';
import { startJobHost } from '../fixture.js';

const STANDIN_DIR = resolve(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'tart');
const IMAGE = 'ghcr.io/cirruslabs/macos-sequoia-base:latest';
const cleanups: (() => void | Promise<void>)[] = [];
const savedEnv = {
  PATH: process.env['PATH'],
  TART_STANDIN_STATE: process.env['TART_STANDIN_STATE'],
  TART_STANDIN_AGENT_WAIT_MS: process.env['TART_STANDIN_AGENT_WAIT_MS'],
};

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

interface StandinState {
  vms: Record<string, { state: string; runPid?: number }>;
  /** `vm` is set on the stand-in ssh's calls (their argv names the IP, not the VM). */
  calls: { argv: string[]; at: number; vm?: string }[];
  maxRunning: number;
}

/** The stand-in on PATH with a base image and, optionally, leftover VMs from an earlier agent. */
function standin(extraVms: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-tart-'));
  const statePath = join(dir, 'tart-state.json');
  writeFileSync(statePath, JSON.stringify({ vms: { [IMAGE]: { state: 'stopped' }, ...extraVms }, calls: [] }));
  process.env['TART_STANDIN_STATE'] = statePath;
  process.env['PATH'] = `${STANDIN_DIR}${delimiter}${process.env['PATH']}`;
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  cleanups.push(() => {
    // Any `tart run` still blocking belongs to a test that failed: end it so nothing leaks.
    for (const vm of Object.values(read().vms)) if (vm.runPid) killQuietly(vm.runPid);
    rmSync(dir, { recursive: true, force: true });
  });
  const read = (): StandinState => JSON.parse(readFileSync(statePath, 'utf8')) as StandinState;
  return {
    dir,
    dataDir,
    statePath,
    read,
    /** The lifecycle verbs called so far, in order. */
    verbs: () => read().calls.map((call) => call.argv[0]!),
    callsFor: (vm: string) =>
      read()
        .calls.filter((call) => call.argv.includes(vm) || call.vm === vm)
        .map((call) => call.argv),
  };
}

function executor(dataDir: string, warmSize: number, extra: Partial<TartExecutorOptions> = {}): TartExecutor {
  const created = new TartExecutor({ dataDir, defaultImage: IMAGE, warmSize, stopTimeoutS: 2, ...extra });
  cleanups.push(() => created.dispose());
  return created;
}

/** Starts an executor and waits until its warm pool is full: the warm VMs' names. */
async function warmVms(dataDir: string, warmSize: number, extra: Partial<TartExecutorOptions> = {}) {
  const warmed = executor(dataDir, warmSize, extra);
  await warmed.initialize();
  await warmed.pool.settled();
  return warmed.pool.runningVms();
}

function request(dir: string, command: string, extra: Partial<ExecutionRequest> = {}) {
  const workdir = mkdtempSync(join(dir, 'work-'));
  const log = fileOutput(mkdtempSync(join(dir, 'log-')));
  cleanups.push(log.close);
  const timings = new Map<TimingPhase, number>();
  let checkpoint: Record<string, unknown> = {};
  const req = executionRequest({
    jobId: `job${Math.random().toString(36).slice(2, 8)}`,
    command,
    workdir,
    output: log.output,
    timing: (phase, ms) => timings.set(phase, ms),
    checkpoint: (state) => (checkpoint = state),
    ...extra,
  });
  return { req, output: log.text, timings, checkpoint: () => checkpoint };
}

/**
 * Runs a job that writes to both streams, reads its environment and its folder and exits 7, and
 * checks what comes back: the exit, the output, and the workspace in the attempt's workdir again
 * (ready for artifact collection).
 */
async function runGreetingJob(dir: string, tartExecutor: ReturnType<typeof executor>) {
  const job = request(dir, 'echo out; echo err >&2; echo "$GREETING from $(basename "$PWD")"; exit 7', {
    env: { GREETING: 'hello' },
  });
  writeFileSync(join(job.req.workdir, 'input.txt'), 'x');
  const result = await (await tartExecutor.start(job.req)).done;
  expect(result).toEqual({ exitCode: 7, signal: null });
  expect(job.output()).toBe('out\nerr\nhello from work\n');
  expect(readFileSync(join(job.req.workdir, 'input.txt'), 'utf8')).toBe('x');
  return job;
}

/**
 * Runs a job that leaves `sleep <seconds>` in the background and execs `sleep <seconds + 1>`,
 * cancels it once both run, and returns its result with the sleeps `ps` still lists after.
 */
async function cancelTwoSleeps(tartExecutor: TartExecutor, dir: string, seconds: number) {
  const first = uniqueSleep(seconds);
  const second = uniqueSleep(seconds + 1);
  const job = request(dir, `${first} & echo started; exec ${second} # hangar-tart-cancel-${process.pid}-${Date.now()}`);
  const execution = await tartExecutor.start(job.req);
  for (let i = 0; i < 200 && !job.output().includes('started'); i++) await new Promise((r) => setTimeout(r, 25));
  const sleeps = () => [...processesMatching(first), ...processesMatching(second)];
  expect(sleeps().length).toBeGreaterThan(0);
  await execution.cancel(1_000);
  const result = await execution.done;
  return { job, result, left: sleeps() };
}

const LIFECYCLE = ['clone', 'run', 'ip', 'exec', 'stop', 'delete'];

describe('tart executor (against the tart stand-in)', () => {
  it('a cold start drives clone → run → ip → exec → stop → delete, in that order', async () => {
    const tart = standin();
    const tartExecutor = executor(tart.dataDir, 0);
    const job = await runGreetingJob(tart.dir, tartExecutor);
    const vm = job.checkpoint()['vm'] as string;
    expect(vm).toMatch(/^hangar-[01]-[0-9a-f-]{36}$/);
    const verbs = tart.callsFor(vm).map((argv) => argv[0]);
    const firstOfEach = LIFECYCLE.map((verb) => verbs.indexOf(verb));
    expect(firstOfEach.every((index) => index >= 0)).toBe(true);
    expect([...firstOfEach].sort((a, b) => a - b)).toEqual(firstOfEach);
    const run = tart.callsFor(vm).find((argv) => argv[0] === 'run')!;
    expect(run).toEqual([
      'run',
      '--no-graphics',
      '--no-audio',
      '--no-clipboard',
      `--dir=hangar:${join(tart.dataDir, 'tart', 'slots', '0')}`,
      vm,
    ]);
    expect(tart.read().vms[vm]).toBeUndefined();
    expect([...job.timings.keys()].sort()).toEqual(['boot', 'clone', 'collect', 'delete', 'ready', 'run']);
  });

  it('a second job takes a warm VM: no clone or boot in its timings', async () => {
    const tart = standin();
    const tartExecutor = executor(tart.dataDir, 1);
    await tartExecutor.initialize();
    await tartExecutor.pool.settled();
    const first = request(tart.dir, 'echo one');
    expect((await (await tartExecutor.start(first.req)).done).exitCode).toBe(0);
    await tartExecutor.pool.settled();
    const second = request(tart.dir, 'echo two');
    const began = Date.now();
    const result = await (await tartExecutor.start(second.req)).done;
    expect(result.exitCode).toBe(0);
    expect(second.output()).toBe('two\n');
    expect(second.timings.has('clone')).toBe(false);
    expect(second.timings.has('boot')).toBe(false);
    expect(second.timings.has('run')).toBe(true);
    expect(Date.now() - began).toBeLessThan(5_000);
    // Each VM ran one attempt only.
    expect(second.checkpoint()['vm']).not.toBe(first.checkpoint()['vm']);
  });

  it('on start, leftover hangar-* VMs are deleted and an idle warm one is adopted', async () => {
    const tart = standin();
    // An earlier agent left: a warm VM in slot 0 (still running), a busy one and a stray stopped one.
    const [warm, busy] = (await warmVms(tart.dataDir, 2)) as [string, string];
    // Pretend slot 1 was running a job when the agent died: its record says busy.
    writeFileSync(join(tart.dataDir, 'tart', 'slots', '1.json'), JSON.stringify({ vm: busy, state: 'busy' }));
    const stray = 'hangar-1-00000000-0000-0000-0000-000000000000';
    execFileSync('tart', ['clone', IMAGE, stray]);
    // Simulate a crash: forget the pool without disposing it (its VMs keep running).
    cleanups.splice(cleanups.length - 1, 1);
    const second = executor(tart.dataDir, 1);
    const outcome = await second.pool.reconcile();
    expect(outcome.adopted).toEqual([warm]);
    expect(outcome.deleted.sort()).toEqual([busy, stray].sort());
    const names = Object.keys(tart.read().vms);
    expect(names.filter((name) => name.startsWith('hangar-'))).toEqual([warm]);
    await second.dispose();
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
  });

  it('a warm VM whose slot record is damaged or of another shape is deleted, not adopted', async () => {
    const tart = standin();
    const [a, b] = (await warmVms(tart.dataDir, 2)) as [string, string];
    writeFileSync(join(tart.dataDir, 'tart', 'slots', '0.json'), '{"vm": "' + a.slice(0, 10)); // cut short
    writeFileSync(
      join(tart.dataDir, 'tart', 'slots', '1.json'),
      JSON.stringify({ vm: b, state: 'warm', access: 'telnet' }),
    );
    cleanups.splice(cleanups.length - 1, 1);
    const second = executor(tart.dataDir, 2);
    const outcome = await second.pool.reconcile();
    expect(outcome.adopted).toEqual([]);
    expect(outcome.deleted.sort()).toEqual([a, b].sort());
    await second.dispose();
  });

  it('cancel kills the job’s processes in the guest and deletes the VM', async () => {
    const tart = standin();
    const tartExecutor = executor(tart.dataDir, 0);
    const { job, result, left } = await cancelTwoSleeps(tartExecutor, tart.dir, 300);
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGTERM');
    expect(left).toEqual([]);
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
    const vm = job.checkpoint()['vm'] as string;
    expect(tart.callsFor(vm).some((argv) => argv[0] === 'exec' && argv.some((arg) => arg.includes('TERM')))).toBe(true);
  });

  it('never more than two VMs run, even with three jobs at once and a warm pool of two', async () => {
    const tart = standin();
    const tartExecutor = executor(tart.dataDir, 2);
    const jobs = [1, 2, 3].map((n) => request(tart.dir, `sleep 0.3; echo job${n}`));
    const executions = await Promise.all(jobs.map(async (job) => (await tartExecutor.start(job.req)).done));
    expect(executions.map((result) => result.exitCode)).toEqual([0, 0, 0]);
    jobs.forEach((job, index) => expect(job.output()).toBe(`job${index + 1}\n`));
    await tartExecutor.pool.settled();
    expect(tart.read().maxRunning).toBeLessThanOrEqual(2);
    await tartExecutor.dispose();
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
  });

  it('recover stops and deletes the VM of an attempt that was running at a crash', async () => {
    const tart = standin();
    const tartExecutor = executor(tart.dataDir, 0);
    const job = request(tart.dir, 'sleep 300');
    const execution = await tartExecutor.start(job.req);
    await tartExecutor.recover(job.checkpoint());
    await execution.done;
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
    await tartExecutor.recover(job.checkpoint());
  });

  it('tart missing says how to install it', async () => {
    const tartExecutor = new TartExecutor({
      dataDir: tmpdir(),
      defaultImage: IMAGE,
      tartBinary: '/nonexistent/tart',
    });
    expect(await tartExecutor.unavailableReason()).toContain('brew install cirruslabs/cli/tart');
    await expect(tartExecutor.start(request(tmpdir(), 'true').req)).rejects.toMatchObject({
      code: 'E_EXECUTOR_UNAVAILABLE',
    });
    await tartExecutor.dispose();
  });
});

/** A key pair the way a user makes one for the SSH fallback (`ssh-keygen`, mode 0600). */
function sshKey(dir?: string): { key: string; publicKey: string } {
  if (dir === undefined) {
    const made = mkdtempSync(join(tmpdir(), 'hangar-key-'));
    cleanups.push(() => rmSync(made, { recursive: true, force: true }));
    dir = made;
  }
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hangar-test', '-f', key]);
  return { key, publicKey: readFileSync(`${key}.pub`, 'utf8').trim() };
}

/** The stand-in with a base image that has no Tart guest agent, and `publicKey` baked into admin's authorized_keys. */
function standinWithoutAgent(publicKey: string | undefined, agentWaitMs: number) {
  process.env['TART_STANDIN_AGENT_WAIT_MS'] = String(agentWaitMs);
  return standin({
    [IMAGE]: { state: 'stopped', guest: { agent: false, authorizedKeys: publicKey ? [publicKey] : [] } },
  });
}

/** Consecutive repeats folded: ['ssh', 'ssh'] → ['ssh']. */
function fold(verbs: (string | undefined)[]): (string | undefined)[] {
  return verbs.filter((verb, index) => verb !== verbs[index - 1]);
}

describe('a tart job and the host folder it shares with its VM', () => {
  // The guest writes to the share as it likes (virtiofs stores its symlinks as they are): whatever it
  // leaves there, the host must not follow a link out of it when it takes the workdir and exit back.
  it('a job that swaps its workdir or its job folder for a link to a host folder gets nothing of it, and the folder stays', async () => {
    const tart = standin();
    const outside = mkdtempSync(join(tmpdir(), 'hangar-outside-'));
    cleanups.push(() => rmSync(outside, { recursive: true, force: true }));
    mkdirSync(join(outside, 'work'));
    writeFileSync(join(outside, 'work', 'secret'), 'a host file');
    writeFileSync(join(outside, 'secret'), 'a host file');
    await using host = await startJobHost({ executors: [executor(tart.dataDir, 0)] });
    const client = host.connect();
    for (const command of [
      `cd .. && rm -rf work && ln -s ${outside} work`,
      `d=$(cd .. && pwd) && cd / && rm -rf "$d" && ln -s ${outside} "$d"`,
    ]) {
      const job = await host.submit({ command, executor: 'tart', artifacts: ['secret'] });
      const done = await host.waitFor(job.id);
      expect(done, command).toMatchObject({ state: 'failed', error: expect.stringMatching(/by a link/) });
      expect(await client.call('artifact.list', { id: job.id }), command).toEqual({ artifacts: [] });
      expect(readFileSync(join(outside, 'work', 'secret'), 'utf8'), command).toBe('a host file');
    }
  });

  it('a `tart stop` that hangs is cut off after its timeout and the VM’s `tart run` killed: the job ends, the VM is deleted', async () => {
    const tart = standin();
    // Each `tart stop` waits 10 minutes before it even signals the VM (a hung XPC service, say).
    writeFileSync(`${tart.statePath}.new`, JSON.stringify({ ...tart.read(), stopDelayMs: 600_000 }));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    // Cut off 1.5 s past its timeout (5 s by default): long enough for the stand-in's `tart stop`
    // to start and record itself on a loaded machine, short of the 10 minutes it would hang.
    const tartExecutor = executor(tart.dataDir, 0, { stopTimeoutS: 0, stopGraceMs: 1_500 });
    const job = request(tart.dir, 'echo done > result; exit 3');
    const result = await (await tartExecutor.start(job.req)).done;
    expect(result).toEqual({ exitCode: 3, signal: null });
    expect(readFileSync(join(job.req.workdir, 'result'), 'utf8')).toBe('done\n');
    const vm = job.checkpoint()['vm'] as string;
    expect(tart.read().vms[vm]).toBeUndefined();
    // Neither the VM's `tart run` nor a `tart stop` of it is left running.
    expect(processesMatching(vm)).toEqual([]);
    expect(tart.callsFor(vm).find((argv) => argv[0] === 'stop')).toEqual(['stop', vm, '--timeout', '0']);
  }, 25_000);

  it('a VM whose `tart run` outlives `tart stop`: the job fails saying what to kill; once killed, the slot is free again', async () => {
    const tart = standin();
    // Both stops (the job's, then the pool's teardown) return without the VM going off.
    writeFileSync(`${tart.statePath}.new`, JSON.stringify({ ...tart.read(), stopLeavesRun: 2 }));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    const tartExecutor = executor(tart.dataDir, 0, { runExitMs: 500 });
    await tartExecutor.initialize();
    const job = request(tart.dir, 'exit 0');
    const execution = await tartExecutor.start(job.req);
    const error = (await execution.done.then(
      () => new Error('the job should have failed'),
      (failure: unknown) => failure,
    )) as Error;
    const vm = job.checkpoint()['vm'] as string;
    expect(error.message).toMatch(
      new RegExp(`tart VM ${vm} \\(tart run, pid \\d+\\) still runs .*; end it with: kill -9 \\d+`),
    );
    expect(tartExecutor.pool.runningVms()).toEqual([vm]);
    // The user does as told; the slot's VM is deleted and the slot emptied, with no restart.
    const pid = Number(/kill -9 (\d+)/.exec(error.message)![1]);
    expect(tart.read().vms[vm]?.runPid).toBe(pid);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 400 && tartExecutor.pool.runningVms().length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(tartExecutor.pool.runningVms()).toEqual([]);
    expect(tart.read().vms[vm]).toBeUndefined();
    // Both slots serve jobs again.
    const [a, b] = [request(tart.dir, 'exit 4'), request(tart.dir, 'exit 5')];
    const results = await Promise.all([a, b].map(async (next) => (await tartExecutor.start(next.req)).done));
    expect(results).toEqual([
      { exitCode: 4, signal: null },
      { exitCode: 5, signal: null },
    ]);
    expect(new Set([a, b].map((next) => Number(/^hangar-(\d)-/.exec(next.checkpoint()['vm'] as string)![1])))).toEqual(
      new Set([0, 1]),
    );
  }, 30_000);

  /**
   * A warm VM adopted after a crash whose stops (the job's, then the pool's teardown) return
   * without it going off: a one-slot executor's job fails saying how to stop it, and the executor
   * checks the VM until it gives up with a warning ("no longer checked"), which this waits for.
   */
  async function stuckAdoptedVm() {
    const tart = standin();
    const [warm] = (await warmVms(tart.dataDir, 1)) as [string];
    // Simulate a crash: forget the pool without disposing it (its VM keeps running, for the next to adopt).
    cleanups.splice(cleanups.length - 1, 1);
    writeFileSync(`${tart.statePath}.new`, JSON.stringify({ ...tart.read(), stopLeavesRun: 2 }));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const second = executor(tart.dataDir, 1, { runExitMs: 300, offCheckForMs: 800, logger });
    await second.initialize();
    await expect((await second.start(request(tart.dir, 'exit 0').req)).done).rejects.toThrow(
      new RegExp(`tart VM ${warm} still runs 0.3 s after \`tart stop\`; stop it with: tart stop ${warm}`),
    );
    for (let i = 0; i < 200 && !warnings.some((line) => line.includes('no longer checked')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return { tart, warm, warnings, second };
  }

  it('an adopted VM that does not stop is checked for a bounded time, backing off, then left with a warning saying what to do', async () => {
    const { tart, warm, warnings, second } = await stuckAdoptedVm();
    const lists = () => tart.read().calls.filter((call) => call.argv[0] === 'list').length;
    const warning = warnings.find((line) => line.includes('no longer checked'));
    expect(warning).toMatch(new RegExp(`tart stop ${warm}`));
    expect(warning).toMatch(/restart the agent/);
    // Checked a few times, not every 5 s for an hour: and no more once the warning came.
    const checked = lists();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(lists()).toBe(checked);
    expect(second.pool.runningVms()).toContain(warm);
  }, 30_000);

  it('an adopted VM no longer checked is asked about again when a job needs its slot: once stopped as the warning said, the slot serves jobs without an agent restart', async () => {
    const { tart, warm, warnings, second } = await stuckAdoptedVm();
    expect(warnings.some((line) => line.includes('no longer checked'))).toBe(true);
    // The user stops it, as the warning says; then two jobs need both slots at once (each waits
    // for the other to have started).
    const state = tart.read();
    state.vms[warm]!.state = 'stopped';
    writeFileSync(`${tart.statePath}.new`, JSON.stringify(state));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    const meet = mkdtempSync(join(tmpdir(), 'hangar-meet-'));
    cleanups.push(() => rmSync(meet, { recursive: true, force: true }));
    const both = (me: string, other: string, code: number) =>
      `touch ${meet}/${me}; while [ ! -e ${meet}/${other} ]; do sleep 0.05; done; exit ${code}`;
    const [a, b] = [request(tart.dir, both('a', 'b', 4)), request(tart.dir, both('b', 'a', 5))];
    const results = await Promise.all([a, b].map(async (next) => (await second.start(next.req)).done));
    expect(results).toEqual([
      { exitCode: 4, signal: null },
      { exitCode: 5, signal: null },
    ]);
    expect(tart.read().vms[warm]).toBeUndefined();
  }, 30_000);

  it('a VM that does not stop: the host takes and removes nothing from the share while the guest still runs', async () => {
    const tart = standin();
    const outside = mkdtempSync(join(tmpdir(), 'hangar-outside-'));
    cleanups.push(() => rmSync(outside, { recursive: true, force: true }));
    const tartExecutor = executor(tart.dataDir, 0);
    await tartExecutor.initialize();
    // A process of the job outlives it and watches its workdir; the next `tart stop` fails.
    const job = request(
      tart.dir,
      `(d=$PWD; while [ -d "$d" ]; do :; done; echo gone > ${outside}/flag) >/dev/null 2>&1 &
      echo started; while [ ! -e ${outside}/go ]; do sleep 0.05; done; exit 0`,
    );
    const execution = await tartExecutor.start(job.req);
    for (let i = 0; i < 200 && !job.output().includes('started'); i++) await new Promise((r) => setTimeout(r, 25));
    // Replaced whole (the stand-in's processes read the state file meanwhile).
    writeFileSync(`${tart.statePath}.new`, JSON.stringify({ ...tart.read(), stopRefusals: 1 }));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    writeFileSync(join(outside, 'go'), '');
    await expect(execution.done).rejects.toThrow(/tart stop failed/);
    // The second stop (the pool's teardown) ended the VM, its processes with it, before the share was cleared.
    expect(tart.read().vms[job.checkpoint()['vm'] as string]).toBeUndefined();
    expect(existsSync(join(outside, 'flag'))).toBe(false);
  });

  it('an exit file that is a link out of the share is not read (to /dev/zero or a FIFO it would hang the agent)', async () => {
    const tart = standin();
    await using host = await startJobHost({ executors: [executor(tart.dataDir, 0)] });
    // The wrapper writes the code through exit.tmp (here into /dev/null), then renames the link to exit.
    const job = await host.submit({ command: 'ln -s /dev/null ../exit.tmp; exit 3', executor: 'tart' });
    const done = await host.waitFor(job.id);
    expect(done).toMatchObject({ state: 'failed', error: expect.stringMatching(/its exit file .* by a link/) });
  });
});

describe('tart executor over SSH (images without the Tart guest agent)', () => {
  it('probes `tart exec` once, then runs the job over ssh: clone → run → ip → exec → ssh → stop → delete', async () => {
    // The agent never answers within the probe's timeout (real `tart exec` waits ~30 s): the probe is cut short.
    const { key, publicKey } = sshKey();
    const tart = standinWithoutAgent(publicKey, 60_000);
    const tartExecutor = executor(tart.dataDir, 0, { sshKey: key, execProbeTimeoutMs: 1_000 });
    // The readiness probe met the new host key first, so ssh's "Permanently added" note is not in the log.
    const job = await runGreetingJob(tart.dir, tartExecutor);
    const vm = job.checkpoint()['vm'] as string;
    const calls = tart.callsFor(vm);
    expect(fold(calls.map((argv) => argv[0]))).toEqual(['clone', 'run', 'ip', 'exec', 'ssh', 'stop', 'delete']);
    // One `tart exec` for this VM: the probe. The job itself went over ssh.
    expect(calls.filter((argv) => argv[0] === 'exec')).toEqual([['exec', vm, '/usr/bin/true']]);
    const ssh = calls.filter((argv) => argv[0] === 'ssh');
    expect(ssh.length).toBe(2);
    const knownHosts = join(tart.dataDir, 'tart', 'known_hosts');
    const prefix = [
      'ssh',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=accept-new',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'ConnectTimeout=5',
      '-o',
      'ServerAliveInterval=10',
      '-o',
      'ServerAliveCountMax=3',
      '-i',
      key,
      'admin@192.168.64.2',
    ];
    expect(ssh[0]).toEqual([...prefix, `'/usr/bin/true'`]);
    expect(ssh[1]).toEqual([...prefix, `'/bin/bash' '/Volumes/My Shared Files/hangar/${job.req.jobId}-1/run.sh'`]);
    expect(readFileSync(knownHosts, 'utf8')).toContain('192.168.64.2 ssh-ed25519 STANDIN-HOSTKEY-');
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
    expect([...job.timings.keys()].sort()).toEqual(['boot', 'clone', 'collect', 'delete', 'ready', 'run']);
  });

  it('cancel over ssh kills the job’s process group in the guest and deletes the VM', async () => {
    const { key, publicKey } = sshKey();
    // This time `tart exec` fails at once rather than timing out: the same fallback.
    const tart = standinWithoutAgent(publicKey, 0);
    const tartExecutor = executor(tart.dataDir, 0, { sshKey: key });
    const { job, result, left } = await cancelTwoSleeps(tartExecutor, tart.dir, 310);
    expect(result).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(left).toEqual([]);
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
    const vm = job.checkpoint()['vm'] as string;
    const calls = tart.callsFor(vm);
    const term = calls.find((argv) => argv[0] === 'ssh' && argv.at(-1)!.includes('TERM'))?.at(-1);
    expect(term).toMatch(/^'\/bin\/sh' '-c' 'kill -s TERM -- -\$1' 'hangar-cancel' '\d+'$/);
    // ready probe, job, TERM over ssh; then the VM goes. No exec but the probe.
    expect(fold(calls.map((argv) => argv[0]))).toEqual(['clone', 'run', 'ip', 'exec', 'ssh', 'stop', 'delete']);
    expect(calls.filter((argv) => argv[0] === 'exec').length).toBe(1);
    expect(calls.filter((argv) => argv[0] === 'ssh').length).toBe(3);
  });

  it('a cancel whose VM is slow to stop sends no KILL and no second stop: the grace ends with the job, not the shutdown', async () => {
    const { key, publicKey } = sshKey();
    const tart = standinWithoutAgent(publicKey, 0);
    // Each `tart stop` takes 2 s, longer than the 1 s grace: the job itself ended on TERM at once.
    writeFileSync(`${tart.statePath}.new`, JSON.stringify({ ...tart.read(), stopDelayMs: 2_000 }));
    renameSync(`${tart.statePath}.new`, tart.statePath);
    const tartExecutor = executor(tart.dataDir, 0, { sshKey: key });
    const { job, result, left } = await cancelTwoSleeps(tartExecutor, tart.dir, 320);
    expect(result).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(left).toEqual([]);
    const calls = tart.callsFor(job.checkpoint()['vm'] as string);
    expect(calls.filter((argv) => argv[0] === 'ssh' && argv.at(-1)!.includes('KILL'))).toEqual([]);
    expect(fold(calls.map((argv) => argv[0]))).toEqual(['clone', 'run', 'ip', 'exec', 'ssh', 'stop', 'delete']);
  }, 30_000);

  it('a warm VM reached over ssh is reused, and adopted over ssh after an agent restart', async () => {
    const { key, publicKey } = sshKey();
    const tart = standinWithoutAgent(publicKey, 0);
    const [warm] = (await warmVms(tart.dataDir, 1, { sshKey: key })) as [string];
    expect(JSON.parse(readFileSync(join(tart.dataDir, 'tart', 'slots', '0.json'), 'utf8'))).toEqual({
      vm: warm,
      state: 'warm',
      access: 'ssh',
      ip: '192.168.64.2',
    });
    // Crash: the warm VM keeps running; a new agent adopts it by probing over ssh, not `tart exec`.
    cleanups.splice(cleanups.length - 1, 1);
    const before = tart.callsFor(warm).length;
    const second = executor(tart.dataDir, 1, { sshKey: key });
    await second.initialize();
    expect(second.pool.runningVms()).toEqual([warm]);
    expect(
      tart
        .callsFor(warm)
        .slice(before)
        .map((argv) => argv[0]),
    ).toEqual(['ssh']);
    const job = request(tart.dir, 'echo warm');
    expect((await (await second.start(job.req)).done).exitCode).toBe(0);
    expect(job.output()).toBe('warm\n');
    expect(job.checkpoint()['vm']).toBe(warm);
    expect(job.timings.has('boot')).toBe(false);
    await second.dispose();
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
  });

  it('an image that accepts neither: a clear error naming authorized_keys, and no VM left', async () => {
    const { key } = sshKey();
    const tart = standinWithoutAgent(undefined, 0);
    const tartExecutor = executor(tart.dataDir, 0, { sshKey: key, readyTimeoutS: 1 });
    const job = request(tart.dir, 'true');
    const error = await tartExecutor.start(job.req).then(
      () => undefined,
      (failure: unknown) => failure as { code: string; message: string },
    );
    expect(error?.code).toBe('E_UNAVAILABLE');
    expect(error?.message).toContain('is the Tart Guest Agent running?');
    expect(error?.message).toContain('admin@192.168.64.2: Permission denied (publickey');
    expect(error?.message).toContain('~admin/.ssh/authorized_keys');
    expect(Object.keys(tart.read().vms)).toEqual([IMAGE]);
  });

  it("guestAccess 'exec' never tries ssh; 'ssh' without a key file is unavailable", async () => {
    const tart = standinWithoutAgent(undefined, 0);
    const execOnly = executor(tart.dataDir, 0, { guestAccess: 'exec', readyTimeoutS: 1 });
    await expect(execOnly.start(request(tart.dir, 'true').req)).rejects.toThrow(/guestAccess 'auto' or 'ssh'/);
    expect(tart.verbs()).not.toContain('ssh');
    const sshOnly = executor(tart.dataDir, 0, { guestAccess: 'ssh', sshKey: join(tart.dir, 'missing') });
    expect(await sshOnly.unavailableReason()).toContain(`no key at ${join(tart.dir, 'missing')}`);
  });
});

describe('tart stand-in', () => {
  it('rejects flags Tart does not have, like the real CLI', () => {
    const tart = standin();
    expect(() => execFileSync('tart', ['run', '--detach', IMAGE], { stdio: 'pipe' })).toThrow(
      /Unknown option '--detach'/,
    );
    expect(() => execFileSync('tart', ['clone', IMAGE], { stdio: 'pipe' })).toThrow(/Missing expected argument/);
    expect(() => execFileSync('tart', ['exec', IMAGE, 'true'], { stdio: 'pipe' })).toThrow(/is not running/);
    expect(existsSync(tart.statePath)).toBe(true);
  });
  it('as ssh: refuses another argv shape, a loose key file and a changed host key, like OpenSSH', () => {
    const tart = standin();
    const { key } = sshKey(tart.dir);
    const ssh = (args: string[]) => {
      try {
        execFileSync('ssh', args, { stdio: 'pipe' });
        return { code: 0, stderr: '' };
      } catch (error) {
        const failure = error as { status: number; stderr: Buffer };
        return { code: failure.status, stderr: failure.stderr.toString() };
      }
    };
    expect(ssh(['admin@192.168.64.2', 'true'])).toMatchObject({ code: 255, stderr: /unexpected argv/ });
    const knownHosts = join(tart.dir, 'known_hosts');
    const args = (host: string) => [
      ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${knownHosts}`],
      ...['-o', 'ConnectTimeout=5', '-o', 'ServerAliveInterval=10', '-o', 'ServerAliveCountMax=3', '-i', key],
      `admin@${host}`,
      'true',
    ];
    expect(ssh(args('192.168.64.9'))).toMatchObject({ code: 255, stderr: /Operation timed out/ });
    // A running VM at .2 (a sleep stands for its `tart run`), whose sshd has a host key other than the one we know.
    const vmProcess = spawn('sleep', ['30'], { stdio: 'ignore' });
    cleanups.push(() => void vmProcess.kill('SIGKILL'));
    const state = tart.read() as unknown as { vms: Record<string, unknown> };
    state.vms['hangar-0-00000000-0000-0000-0000-000000000000'] = {
      state: 'running',
      runPid: vmProcess.pid,
      bootAt: 0,
      ip: '192.168.64.2',
      guest: { hostKey: 'ssh-ed25519 OTHER' },
    };
    writeFileSync(tart.statePath, JSON.stringify(state));
    writeFileSync(knownHosts, '192.168.64.2 ssh-ed25519 BEFORE\n');
    expect(ssh(args('192.168.64.2'))).toMatchObject({ code: 255, stderr: /Host key verification failed/ });
    rmSync(knownHosts);
    chmodSync(key, 0o644);
    expect(ssh(args('192.168.64.2'))).toMatchObject({ code: 255, stderr: /UNPROTECTED PRIVATE KEY FILE/ });
  });
});
