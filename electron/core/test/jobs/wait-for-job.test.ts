import { BULK_STREAM_WINDOW } from '@hangar/shared';
import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { callRetrying } from '../../src/jobs/job-link.js';
import { followJobLog, waitForJob } from '../../src/jobs/log-follower.js';
import { FakeHost, JOB, jobInfo } from './fake-host.js';
import { useCleanups } from '../../../../test/support/cleanups.js';
import { until } from '../../../../test/support/until.js';

const cleanups = useCleanups();

function fakeHost(): FakeHost {
  const host = new FakeHost();
  cleanups.push(() => host.dispose());
  return host;
}

/** A host whose job stays queued, counting the job.get calls it answers. */
function hostWithQueuedJob(attempt = 0): { host: FakeHost; gets: () => number } {
  const host = fakeHost();
  host.handlers['job.get'] = () => ({ answer: jobInfo('queued', attempt) });
  return { host, gets: () => host.calls.filter((c) => c.method === 'job.get').length };
}

/** Settles (either way) into a record the test can read without awaiting. */
function watch<T>(promise: Promise<T>): { settled?: 'resolved' | 'rejected'; error?: unknown } {
  const state: { settled?: 'resolved' | 'rejected'; error?: unknown } = {};
  promise.then(
    () => (state.settled = 'resolved'),
    (error: unknown) => {
      state.settled = 'rejected';
      state.error = error;
    },
  );
  return state;
}

describe('waitForJob with an AbortSignal', () => {
  it('stops asking once the signal fires: rejects with its reason, and a job.updated after it asks nothing', async () => {
    const { host, gets } = hostWithQueuedJob();
    const controller = new AbortController();
    const waiting = watch(waitForJob(host, JOB, 60_000, (job) => job.state !== 'queued', controller.signal));
    await until(() => (gets() === 1 ? true : undefined), 'the first job.get');

    controller.abort();
    // Each of these woke the old loop into another job.get; stopped, it asks nothing.
    host.emit('job.updated', { job: jobInfo('queued', 0) });
    await until(
      () => (waiting.settled !== undefined || gets() > 1 ? true : undefined),
      'the wait to stop or ask again',
    );
    expect(waiting.settled).toBe('rejected');
    expect((waiting.error as Error).name).toBe('AbortError');
    host.emit('job.updated', { job: jobInfo('queued', 0) });
    await host.call('job.get', { id: JOB }); // a round trip on the same link, after the event
    expect(gets()).toBe(2); // the test's own
  });

  it('a job.get waiting for the link to come back asks nothing once the signal fired', async () => {
    vi.useFakeTimers();
    cleanups.push(() => vi.useRealTimers());
    const { host, gets } = hostWithQueuedJob();
    host.down = true;
    const controller = new AbortController();
    const waiting = watch(waitForJob(host, JOB, 60_000, (job) => job.state !== 'queued', controller.signal));
    await vi.advanceTimersByTimeAsync(1000); // tries at the link, each refused
    expect(waiting.settled).toBeUndefined();
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting.settled).toBe('rejected');
    host.down = false;
    // The delays between tries (at most 2 s each), many times over: nobody waits for an answer.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(gets()).toBe(0);
  });

  it('an aborted signal asks nothing at all', async () => {
    const { host, gets } = hostWithQueuedJob();
    await expect(waitForJob(host, JOB, 60_000, () => true, AbortSignal.abort())).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(gets()).toBe(0);
  });

  it('a follower through retries, stopped while it waits for the next attempt, returns where it got to', async () => {
    const { host, gets } = hostWithQueuedJob(1);
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: 1, from: p.from, compression: 'deflate' },
      // An empty log that has ended: the agent opens the stream and closes it with log_end.
      after: () =>
        agent
          .openStream({ id: p.stream_id, sendOffset: 0, window: BULK_STREAM_WINDOW })
          .close({ code: 'log_end', message: 'attempt ended', exit_code: 1 }),
    });
    const controller = new AbortController();
    const following = watch(
      followJobLog(host, JOB, { follow: true, throughRetries: true, signal: controller.signal }, { data: () => {} }),
    );
    await until(() => (gets() === 1 ? true : undefined), 'the wait for a retry');
    controller.abort();
    host.emit('job.updated', { job: jobInfo('queued', 1) });
    await until(() => (following.settled !== undefined || gets() > 1 ? true : undefined), 'the follow to stop');
    expect(following.settled).toBe('resolved');
    expect(gets()).toBe(1);
  });

  it('a follower through a dozen attempts leaves no listener on the signal it was given', async () => {
    const host = fakeHost();
    const LAST = 12;
    let current = 1;
    host.handlers['job.get'] = () => {
      current = Math.min(current + 1, LAST);
      return {
        answer:
          current < LAST ? jobInfo('queued', current) : { ...jobInfo('queued', LAST), state: 'failed', exit_code: 1 },
      };
    };
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: current, from: p.from, compression: 'deflate' },
      after: () =>
        agent
          .openStream({ id: p.stream_id, sendOffset: 0, window: BULK_STREAM_WINDOW })
          .close({ code: 'log_end', message: 'attempt ended', exit_code: 1 }),
    });
    const controller = new AbortController();
    const end = await followJobLog(
      host,
      JOB,
      { follow: true, throughRetries: true, signal: controller.signal },
      { data: () => {} },
    );
    expect(end.attempt).toBe(LAST);
    // Each was one more abort listener (Node warns past 10), held until the signal fired.
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('callRetrying with an AbortSignal (the lane path asks job.get for the exit code this way)', () => {
  it('a call waiting for the link to come back stops when the signal fires, not at its next try', async () => {
    vi.useFakeTimers();
    cleanups.push(() => vi.useRealTimers());
    const { host, gets } = hostWithQueuedJob();
    host.down = true;
    const controller = new AbortController();
    const calling = watch(
      callRetrying(host, Date.now() + 120_000, () => host.call('job.get', { id: JOB }), controller.signal),
    );
    await vi.advanceTimersByTimeAsync(1000); // tries at the link, each refused, and waits between them
    expect(calling.settled).toBeUndefined();
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(calling.settled).toBe('rejected');
    expect((calling.error as Error).name).toBe('AbortError');
    host.down = false;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(gets()).toBe(0);
  });
});
