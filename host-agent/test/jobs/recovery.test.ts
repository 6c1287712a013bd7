import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { SandboxExecutor } from '../../src/jobs/executors/sandbox.js';
import { AgentStore } from '../../src/store/db.js';
import { killQuietly, processesMatching, processesRunning, uniqueSleep } from '../../../test/support/until.js';
import { executionRequest } from './executors/execution-request.mjs';
import { checkpointedPgid, groupMembers, startJobHost, waitUntil } from './fixture.js';

/** Runs an agent in its own process (crash-agent.mjs) and submits `command`; resolves once the job runs. */
async function agentRunning(argv: string[]): Promise<{ agent: ChildProcess; exited: Promise<unknown>; id: string }> {
  const agent = spawn(process.execPath, [join(import.meta.dirname, 'crash-agent.mjs'), ...argv], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => agent.once('exit', resolve));
  const lines = createInterface({ input: agent.stdout! });
  const id = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => resolve((JSON.parse(line) as { running: string }).running));
    void exited.then((code) => reject(new Error(`crash agent exited with ${String(code)}`)));
  });
  return { agent, exited, id };
}

/** Runs an agent in its own process, submits `command`, and kill -9s the agent once the job runs. */
async function crashMidJob(dataDir: string, command: string, retries: number): Promise<string> {
  const { agent, exited, id } = await agentRunning([dataDir, command, String(retries)]);
  agent.kill('SIGKILL');
  await exited;
  return id;
}

/** As if numbers it holds had been handed out again: attempt 1's checkpoint gets `changes`. */
function rewriteCheckpoint(dataDir: string, id: string, changes: Record<string, unknown>): void {
  const store = AgentStore.open(dataDir);
  try {
    const row = store.db.prepare('SELECT checkpoint FROM job_attempts WHERE job_id = ? AND number = 1').get(id) as {
      checkpoint: string;
    };
    const checkpoint = JSON.stringify({ ...(JSON.parse(row.checkpoint) as object), ...changes });
    store.db.prepare('UPDATE job_attempts SET checkpoint = ? WHERE job_id = ? AND number = 1').run(checkpoint, id);
  } finally {
    store.dispose();
  }
}

describe('crash recovery and shutdown', () => {
  it('after kill -9 of the agent mid-job, a restart marks the attempt lost, kills what it left and retries', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    try {
      const id = await crashMidJob(dataDir, 'echo before-crash; exec sleep 60', 1);
      const before = AgentStore.open(dataDir);
      const orphan = checkpointedPgid(before, id)!;
      before.dispose();
      expect(await groupMembers(orphan)).not.toEqual([]);

      await using host = await startJobHost({ dataDir });
      const pgid = checkpointedPgid(host.store, id, 1)!;
      expect(pgid).toBeGreaterThan(1);
      // The recovery ran in JobService.start: the orphaned sleep is gone, before attempt 2 even begins.
      expect(await groupMembers(pgid)).toEqual([]);
      const job = await waitUntil(() => {
        const detail = host.jobs.get(id);
        return detail.attempt === 2 && detail.state === 'running' ? detail : undefined;
      });
      expect(job.attempts[0]).toMatchObject({ state: 'lost', number: 1 });
      expect(job.attempts[0]!.error).toMatch(/agent stopped/);
      const log = await host.connect().readLog(id, { attempt: 1 });
      expect(log.data.toString()).toMatch(/^before-crash\n\n\[hangar\] attempt lost/);
      await host.jobs.cancel(id);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a lost attempt with no retries left ends the job as lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    try {
      const id = await crashMidJob(dataDir, 'sleep 60', 0);
      await using host = await startJobHost({ dataDir });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect(await groupMembers(checkpointedPgid(host.store, id)!)).toEqual([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('after kill -9 of the agent, a restart also kills what the lost attempt moved out of its group', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    const escaped = uniqueSleep();
    const daemon = uniqueSleep();
    try {
      // setsid, and a daemon's double fork (reparented to init): no group or parent leads to them.
      const command = [`setsid ${escaped} &`, `sh -c 'setsid sh -c "${daemon} &" &'`, 'exec sleep 60'].join('\n');
      const id = await crashMidJob(dataDir, command, 0);
      await waitUntil(() => processesMatching(escaped).length > 0 && processesMatching(daemon).length > 0);
      await using host = await startJobHost({ dataDir });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect({ escaped: processesMatching(escaped), daemon: processesMatching(daemon) }).toEqual({
        escaped: [],
        daemon: [],
      });
    } finally {
      [...processesMatching(escaped), ...processesMatching(daemon)].forEach(killQuietly);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('the restart ends the lost attempt by its marks, and no stranger that now holds its process group id', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    const nap = uniqueSleep();
    const strangerNap = uniqueSleep();
    try {
      const id = await crashMidJob(dataDir, nap, 0);
      // A stranger: a sleep without the marks, in a group whose leader is gone (as the job's shell
      // may be by the time the agent restarts).
      const leader = spawn('/bin/sh', ['-c', `${strangerNap} >/dev/null 2>&1 &`], {
        detached: true,
        stdio: 'ignore',
        env: { PATH: process.env['PATH'] },
      });
      await once(leader, 'exit');
      await waitUntil(() => (processesMatching(strangerNap).length > 0 ? true : undefined));
      rewriteCheckpoint(dataDir, id, { pgid: leader.pid });

      await using host = await startJobHost({ dataDir });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect(processesMatching(nap)).toEqual([]);
      expect(processesMatching(strangerNap)).toHaveLength(1);
    } finally {
      [...processesMatching(nap), ...processesMatching(strangerNap)].forEach(killQuietly);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('on shutdown, running jobs get the grace to finish, the rest are requeued and run on the next start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-drain-'));
    try {
      let quick: string;
      let slow: string;
      {
        await using host = await startJobHost({ dataDir, maxJobs: 2, killGraceMs: 500 });
        quick = (await host.submit({ command: 'sleep 0.3; echo quick', executor: 'shell' })).id;
        slow = (await host.submit({ command: 'trap "exit 143" TERM; sleep 60 & wait', executor: 'shell' })).id;
        await host.waitFor(slow, ['running']);
        await host.waitFor(quick, ['running']);
        const pgid = checkpointedPgid(host.store, slow)!;
        await host.jobs.drain(1000);
        expect(host.jobs.get(quick).state).toBe('succeeded');
        const requeued = host.jobs.get(slow);
        expect(requeued).toMatchObject({ state: 'queued', attempt: 1 });
        expect(requeued.attempts[0]).toMatchObject({ state: 'cancelled' });
        expect(await groupMembers(pgid)).toEqual([]);
        await host.stop();
      }
      await using again = await startJobHost({ dataDir, killGraceMs: 200 });
      await again.waitFor(slow, ['running']);
      expect(again.jobs.get(slow).attempt).toBe(2);
      await again.jobs.cancel(slow);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

const HAS_BWRAP = process.platform === 'linux' && existsSync('/usr/bin/bwrap');

/**
 * bubblewrap without --die-with-parent: its sandbox's init then outlives bwrap, as it does when the
 * agent dies before the init has asked to die with bwrap (a race of the first ~100 ms under load).
 * This makes that orphan every time. The job user must be able to run it.
 */
function bwrapThatLeavesOrphans(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bwrap-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'bwrap');
  writeFileSync(
    path,
    '#!/bin/sh\nfor arg; do shift; [ "$arg" = --die-with-parent ] || set -- "$@" "$arg"; done\nexec /usr/bin/bwrap "$@"\n',
  );
  chmodSync(path, 0o755);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `ps` rows (pid, args) whose args hold every needle. */
function psMatching(...needles: string[]): { pid: number; args: string }[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /^\s*(\d+)\s(.*)$/.exec(line))
    .filter((match) => match !== null && needles.every((needle) => match[2]!.includes(needle)))
    .map((match) => ({ pid: Number(match![1]), args: match![2]! }));
}

/**
 * A sandbox attempt left as an orphan by its agent: the agent stand-in started it on a bwrap that
 * leaves its init behind, the test SIGKILLed the attempt's two watchers (by their exact pids), then
 * the agent; bwrap died with it, and the sandbox's init runs on, reparented, with the job in it.
 */
async function orphanSandbox(dataDir: string, bwrap: string, nap: string): Promise<{ id: string; bwrapPid: number }> {
  const { agent, exited, id } = await agentRunning([dataDir, nap, '0', 'sandbox', bwrap]);
  await waitUntil(() => (processesRunning(nap).length > 0 ? true : undefined));
  // The watchers: the shells that read the agent link (beside bwrap, and the sandbox's first).
  const watchers = psMatching('/bin/sh -c ', 'while read -r _', nap).filter(({ args }) => args.startsWith('/bin/sh'));
  expect(watchers).toHaveLength(2);
  for (const { pid } of watchers) process.kill(pid, 'SIGKILL');
  agent.kill('SIGKILL');
  await exited;
  const store = AgentStore.open(dataDir);
  const bwrapPid = checkpointedPgid(store, id)!;
  store.dispose();
  // bwrap gone and reaped (by the host's init): until then its pid and start time still name it.
  await waitUntil(() => (existsSync(`/proc/${bwrapPid}`) ? undefined : true));
  // The orphan: bwrap is gone, the job is not.
  expect(processesRunning(nap)).toHaveLength(1);
  return { id, bwrapPid };
}

describe.skipIf(!HAS_BWRAP)('crash recovery of sandboxed attempts', () => {
  it('after kill -9 of the agent, a restart ends a sandbox whose bwrap is gone (its init orphaned, the job in it)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    const bwrap = bwrapThatLeavesOrphans();
    const nap = uniqueSleep();
    try {
      const { id } = await orphanSandbox(dataDir, bwrap.path, nap);
      const executor = new SandboxExecutor({ dataDir, cgroupParent: null, bwrapPath: bwrap.path });
      await using host = await startJobHost({ dataDir, executors: [executor] });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect(processesMatching(nap)).toEqual([]);
    } finally {
      processesMatching(nap).forEach(killQuietly);
      bwrap.remove();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('the restart ends that orphan, and no stranger that now holds its group id or its pid namespace number', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    const bwrap = bwrapThatLeavesOrphans();
    const nap = uniqueSleep();
    const strangerNap = uniqueSleep();
    const otherNap = uniqueSleep();
    const executor = new SandboxExecutor({ dataDir, cgroupParent: null });
    try {
      const { id } = await orphanSandbox(dataDir, bwrap.path, nap);
      // A stranger: the job user's sleep, started later, in a group whose leader is gone, its
      // environment marked for another attempt of the same job.
      const uid = executor.jobUser?.uid ?? process.getuid!();
      const gid = executor.jobUser?.gid ?? process.getgid!();
      const leader = spawn(
        'setpriv',
        [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '/bin/sh', '-c', `${strangerNap} >/dev/null 2>&1 &`],
        { detached: true, stdio: 'ignore', env: { PATH: process.env['PATH'], HANGAR_JOB_ID: id, HANGAR_ATTEMPT: '2' } },
      );
      await once(leader, 'exit');
      await waitUntil(() => (processesRunning(strangerNap).length > 0 ? true : undefined));
      // Another attempt's sandbox, alive: its pid namespace.
      let otherNamespace: number | undefined;
      const other = await executor.start(
        executionRequest({
          jobId: 'other',
          command: otherNap,
          workdir: mkdtempSync(join(tmpdir(), 'hangar-work-')),
          output: { fd: 2, write() {} },
          checkpoint: (state) => (otherNamespace = state['pidNamespace'] as number | undefined),
        }),
      );
      await waitUntil(() => otherNamespace);
      await waitUntil(() => (processesRunning(otherNap).length > 0 ? true : undefined));
      // The checkpoint now names the stranger's group (leader gone, as bwrap is) and the other
      // sandbox's namespace.
      rewriteCheckpoint(dataDir, id, { pid: leader.pid, pgid: leader.pid, pidNamespace: otherNamespace });

      await using host = await startJobHost({
        dataDir,
        executors: [new SandboxExecutor({ dataDir, cgroupParent: null })],
      });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect(processesMatching(nap)).toEqual([]);
      expect(processesRunning(strangerNap)).toHaveLength(1);
      expect(processesRunning(otherNap)).toHaveLength(1);
      await other.cancel(0);
    } finally {
      await executor.dispose();
      [...processesMatching(nap), ...processesMatching(strangerNap), ...processesMatching(otherNap)].forEach(
        killQuietly,
      );
      bwrap.remove();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
