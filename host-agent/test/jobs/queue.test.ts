import { HangarError, type JobInfo } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { ShellExecutor } from '../../src/jobs/index.js';
import type { Executor } from '../../src/jobs/index.js';
import { killQuietly, processesMatching, uniqueSleep } from '../../../test/support/until.js';
import { checkpointedPgid, groupMembers, startJobHost, waitUntil } from './fixture.js';

/** A shell executor under another name, to test per-executor limits and unavailability. */
function namedShell(name: 'sandbox' | 'tart', maxConcurrency: number, unavailable?: string): Executor {
  const shell = new ShellExecutor(maxConcurrency);
  return Object.assign(Object.create(shell) as ShellExecutor, {
    name,
    maxConcurrency,
    unavailableReason: async () => unavailable,
  }) as unknown as Executor;
}

describe('job queue', () => {
  it("a job's exit code becomes the job's, and success is exit 0", async () => {
    await using host = await startJobHost();
    const failing = await host.submit({ command: 'echo out; echo err >&2; exit 7', executor: 'shell' });
    const passing = await host.submit({ command: 'true', executor: 'shell' });
    const failed = await host.waitFor(failing.id);
    expect(failed).toMatchObject({ state: 'failed', exit_code: 7, attempt: 1 });
    expect(failed.attempts[0]).toMatchObject({ state: 'failed', exit_code: 7 });
    expect(await host.waitFor(passing.id)).toMatchObject({ state: 'succeeded', exit_code: 0 });
    const client = host.connect();
    const log = await client.readLog(failing.id);
    expect(log.data.toString()).toContain('out\nerr\n');
    expect(log.reason).toMatchObject({ code: 'log_end', exit_code: 7 });
  });

  it('every state change is published as job.updated', async () => {
    await using host = await startJobHost();
    const job = await host.submit({ command: 'true', executor: 'shell' });
    await host.waitFor(job.id);
    const states = host.events.filter((e) => e.id === job.id).map((e) => e.state);
    expect(states).toEqual(['queued', 'preparing', 'running', 'succeeded']);
  });

  it('runs jobs first in, first out, never more at once than --max-jobs', async () => {
    await using host = await startJobHost({ maxJobs: 2 });
    const submitted: JobInfo[] = [];
    for (let i = 0; i < 6; i++) submitted.push(await host.submit({ command: 'sleep 0.2', executor: 'shell' }));
    let peak = 0;
    const starts: string[] = [];
    await waitUntil(() => {
      const running = host.jobs.list(100, ['preparing', 'running']);
      peak = Math.max(peak, running.length);
      return submitted.every((j) => host.jobs.get(j.id).state === 'succeeded');
    });
    for (const event of host.events) if (event.state === 'preparing') starts.push(event.id);
    expect(peak).toBeLessThanOrEqual(2);
    expect(starts).toEqual(submitted.map((j) => j.id));
  });

  it("an executor's own limit holds even when the host has room", async () => {
    await using host = await startJobHost({ maxJobs: 4, executors: [new ShellExecutor(), namedShell('tart', 1)] });
    const a = await host.submit({ command: 'sleep 0.3', executor: 'tart' });
    const b = await host.submit({ command: 'sleep 0.3', executor: 'tart' });
    const c = await host.submit({ command: 'sleep 0.3', executor: 'shell' });
    await waitUntil(() => host.jobs.get(c.id).state === 'running' || undefined);
    expect(host.jobs.get(a.id).state).toBe('running');
    expect(host.jobs.get(b.id).state).toBe('queued');
    await host.waitFor(b.id);
  });

  it('an unavailable executor is refused with its reason; the default is the best available one', async () => {
    await using host = await startJobHost({
      executors: [
        new ShellExecutor(),
        namedShell('sandbox', 4, 'bubblewrap is not installed (apt install bubblewrap)'),
      ],
    });
    const refused = host.submit({ command: 'true', executor: 'sandbox' });
    await expect(refused).rejects.toMatchObject({ code: 'E_EXECUTOR_UNAVAILABLE' });
    await expect(refused).rejects.toThrow(/apt install bubblewrap/);
    await expect(host.submit({ command: 'true', executor: 'tart' })).rejects.toBeInstanceOf(HangarError);
    expect((await host.submit({ command: 'true' })).executor).toBe('shell');
  });

  it('a failed job is retried with backoff up to its retries, then stays failed', async () => {
    await using host = await startJobHost({ retryBackoff: { baseMs: 100, maxMs: 1000 } });
    const job = await host.submit({ command: 'exit 3', executor: 'shell', retries: 2 });
    const done = await host.waitFor(job.id);
    expect(done).toMatchObject({ state: 'failed', exit_code: 3, attempt: 3 });
    expect(done.attempts.map((a) => a.state)).toEqual(['failed', 'failed', 'failed']);
    // Backoff: the second attempt waited ≥ 100 ms after the first ended, the third ≥ 200 ms.
    const [first, second, third] = done.attempts;
    expect(second!.started_at! - first!.finished_at!).toBeGreaterThanOrEqual(95);
    expect(third!.started_at! - second!.finished_at!).toBeGreaterThanOrEqual(195);
  });

  it('job.retry runs a finished job again as a new attempt', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const job = await client.call<JobInfo>('job.submit', { command: 'exit 1', executor: 'shell' });
    await host.waitFor(job.id);
    await expect(client.call('job.retry', { id: 'j-00000000' })).rejects.toMatchObject({ code: 'E_JOB_NOT_FOUND' });
    const again = await client.call<JobInfo>('job.retry', { id: job.id });
    expect(again.state).toBe('queued');
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'failed', attempt: 2 });
    await expect(client.call('job.cancel', { id: job.id })).rejects.toMatchObject({ code: 'E_JOB_STATE' });
  });

  it('timeout: SIGTERM to the whole group, SIGKILL after the grace, nothing left, not retried', async () => {
    await using host = await startJobHost({ killGraceMs: 300 });
    // The child ignores SIGTERM: only SIGKILL after the grace ends it.
    const job = await host.submit({
      command: 'sh -c \'trap "" TERM; sleep 30\' & sleep 30',
      executor: 'shell',
      timeout_ms: 1000,
      retries: 2,
    });
    const pgid = await waitUntil(() => checkpointedPgid(host.store, job.id));
    await waitUntil(async () => (await groupMembers(pgid)).length >= 2 || undefined);
    const done = await host.waitFor(job.id, undefined, 10_000);
    expect(done).toMatchObject({ state: 'timed_out', attempt: 1 });
    expect(await groupMembers(pgid)).toEqual([]);
  });

  it('cancel stops a running job and its background processes; a queued job is cancelled at once', async () => {
    await using host = await startJobHost({ maxJobs: 1 });
    const client = host.connect();
    const running = await host.submit({ command: 'sleep 30 & sleep 30 & wait', executor: 'shell', retries: 3 });
    const queued = await host.submit({ command: 'true', executor: 'shell' });
    const pgid = await waitUntil(() => checkpointedPgid(host.store, running.id));
    await waitUntil(async () => (await groupMembers(pgid)).length >= 3 || undefined);
    const started = Date.now();
    const cancelled = await client.call<JobInfo>('job.cancel', { id: running.id });
    expect(cancelled.state).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await groupMembers(pgid)).toEqual([]);
    // The queued one ran after it, and a finished one cannot be cancelled.
    expect(await host.waitFor(queued.id)).toMatchObject({ state: 'succeeded' });
    const third = await host.submit({ command: 'sleep 5', executor: 'shell' });
    const fourth = await host.submit({ command: 'true', executor: 'shell' });
    expect((await client.call<JobInfo>('job.cancel', { id: fourth.id })).state).toBe('cancelled');
    await client.call('job.cancel', { id: third.id });
  });

  it('background processes a job leaves behind are stopped when its shell exits', async () => {
    await using host = await startJobHost();
    // `$$` of the job's shell is its process group: the shell is the group's leader.
    const job = await host.submit({ command: 'sleep 30 > /dev/null 2>&1 & echo $$', executor: 'shell' });
    const done = await host.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    const pgid = Number((await host.connect().readLog(job.id)).data.toString().trim());
    expect(pgid).toBeGreaterThan(1);
    expect(await groupMembers(pgid)).toEqual([]);
  });

  it('a cancel also waits out, then kills, what left the group and ignores SIGTERM', async () => {
    await using host = await startJobHost({ killGraceMs: 300 });
    const client = host.connect();
    const stubborn = uniqueSleep();
    try {
      // Out of the group (setsid) and deaf to SIGTERM: every look during the grace finds it again,
      // so only the SIGKILL after the grace ends it.
      const command = [`setsid sh -c 'trap "" TERM; ${stubborn}; true' > /dev/null 2>&1 &`, 'exec sleep 30'].join('\n');
      const job = await host.submit({ command, executor: 'shell' });
      await waitUntil(() => (processesMatching(stubborn).length === 2 ? true : undefined));
      expect((await client.call<JobInfo>('job.cancel', { id: job.id })).state).toBe('cancelled');
      expect(processesMatching(stubborn)).toEqual([]);
    } finally {
      processesMatching(stubborn).forEach(killQuietly);
    }
  });

  it('what a finished job moved out of its group is stopped too, unless it dropped the marks', async () => {
    await using host = await startJobHost();
    const escaped = uniqueSleep();
    const daemon = uniqueSleep();
    const optedOut = uniqueSleep();
    try {
      // setsid, a daemon's double fork (reparented to init, a session of its own), and one that
      // leaves the job on purpose. The job ends once all three have started.
      const command = [
        `setsid sh -c '${escaped} & echo started > escaped' > /dev/null 2>&1 &`,
        `sh -c 'setsid sh -c "${daemon} & echo started > daemon" &' > /dev/null 2>&1`,
        `env -u HANGAR_JOB_ID setsid sh -c 'echo started > opted-out; exec ${optedOut}' > /dev/null 2>&1 &`,
        'until [ -s escaped ] && [ -s daemon ] && [ -s opted-out ]; do sleep 0.01; done',
        'echo done',
      ].join('\n');
      const job = await host.submit({ command, executor: 'shell' });
      const done = await host.waitFor(job.id);
      expect(done.state).toBe('succeeded');
      expect((await host.connect().readLog(job.id)).data.toString()).toContain('done');
      expect({ escaped: processesMatching(escaped), daemon: processesMatching(daemon) }).toEqual({
        escaped: [],
        daemon: [],
      });
      expect(processesMatching(optedOut)).toHaveLength(1);
    } finally {
      [...processesMatching(escaped), ...processesMatching(daemon), ...processesMatching(optedOut)].forEach(
        killQuietly,
      );
    }
  });
});
