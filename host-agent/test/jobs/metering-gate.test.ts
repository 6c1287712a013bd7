import { HangarError } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import type { JobMetering } from '../../src/jobs/index.js';
import { startJobHost } from './fixture.js';

/** What the job service asks billing (host-agent/src/billing does the deciding; here a stand-in). */
function plan() {
  const meters: { jobId: string; number: number; startedAt: number; endedAt?: number }[] = [];
  const state = { refusal: undefined as HangarError | undefined };
  const metering: JobMetering = {
    admit: () => {
      if (state.refusal) throw state.refusal;
    },
    attemptStarted: (f) => {
      const meter: (typeof meters)[number] = { ...f };
      meters.push(meter);
      return { ended: (at) => (meter.endedAt = at) };
    },
  };
  return { metering, meters, state };
}

const TRIAL_ENDED = new HangarError(
  'E_PLAN_LIMIT',
  'the 7-day trial has ended; upgrade to keep running build jobs: hangar account upgrade pro',
);

describe('build jobs and the plan', () => {
  it('each attempt is metered from its start to its end; a refused plan refuses new jobs and fails queued ones saying why', async () => {
    const { metering, meters, state } = plan();
    await using host = await startJobHost({ maxJobs: 1, metering });
    const running = await host.submit({ command: 'sleep 0.4', executor: 'shell' });
    const queued = await host.submit({ command: 'true', executor: 'shell' });
    await host.waitFor(running.id, ['running']);
    state.refusal = TRIAL_ENDED; // the relay's entitlement changed while the first job ran

    expect(await host.waitFor(running.id)).toMatchObject({ state: 'succeeded' });
    const failed = await host.waitFor(queued.id);
    expect(failed).toMatchObject({ state: 'failed', error: TRIAL_ENDED.message, attempts: [] });
    await expect(host.submit({ command: 'true', executor: 'shell' })).rejects.toMatchObject({
      code: 'E_PLAN_LIMIT',
      message: TRIAL_ENDED.message,
    });

    expect(meters).toHaveLength(1);
    const [meter] = meters;
    expect(meter).toMatchObject({ jobId: running.id, number: 1 });
    expect(meter!.endedAt! - meter!.startedAt).toBeGreaterThanOrEqual(400);

    // Allowed again (upgraded): a retry runs, metered as attempt 1 of that job.
    state.refusal = undefined;
    await host.jobs.retry(queued.id);
    expect(await host.waitFor(queued.id)).toMatchObject({ state: 'succeeded' });
    expect(meters.map((m) => [m.jobId, m.number])).toEqual([
      [running.id, 1],
      [queued.id, 1],
    ]);
  });
});
