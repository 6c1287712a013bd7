import { Emitter, EventHub, HOST_EVENTS, type HostStatus, type JobInfo } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { knownJobs } from '../../src/hosts/known-jobs.js';
import { knownSessions, type SessionList } from '../../src/hosts/known-sessions.js';

/** A host's link as the listings follow it: its events, and its status. */
function fakeLink() {
  const events = new EventHub<typeof HOST_EVENTS>();
  const status = new Emitter<HostStatus>();
  return { link: { on: events.on.bind(events), onStatus: status.event }, events, status };
}

const job = (id: string, state: JobInfo['state'], attempt = 1): JobInfo => ({
  id,
  state,
  command: 'true',
  executor: 'shell',
  created_at: 0,
  finished_at: null,
  exit_code: null,
  attempt,
  retries: 0,
  error: null,
});

/** An ask the test answers by hand, counting the asks. */
function manualAsk<T>() {
  const pending: ((value: T) => void)[] = [];
  const asked: unknown[] = [];
  const ask = (query?: unknown) => {
    asked.push(query);
    return new Promise<T>((resolve) => pending.push(resolve));
  };
  return { ask, asked, answer: (value: T) => pending.shift()!(value) };
}

describe('a linked host’s listings, kept by its events', () => {
  it('jobs: answered from what the host said, with each job.updated placed in it, and asked again at most once a second', async () => {
    let now = 0;
    const jobs = knownJobs(() => now);
    const { link, events } = fakeLink();
    jobs.follow('box', link);
    const host = manualAsk<JobInfo[]>();

    const first = jobs.list('box', host.ask, 2);
    host.answer([job('j-b', 'running'), job('j-a', 'succeeded')]);
    expect((await first).map((j) => j.id)).toEqual(['j-b', 'j-a']);

    events.fire({ event: 'job.updated', data: { job: job('j-c', 'queued', 0) } });
    events.fire({ event: 'job.updated', data: { job: job('j-b', 'succeeded') } });
    now = 1000;
    const kept = await jobs.list('box', host.ask, 2);
    expect(kept.map((j) => [j.id, j.state])).toEqual([
      ['j-c', 'queued'],
      ['j-b', 'succeeded'],
    ]);
    // Behind that answer, one background ask; a second listing at once asks no more.
    expect(host.asked).toEqual([2, 2]);
    await jobs.list('box', host.ask, 2);
    expect(host.asked).toHaveLength(2);
    // A larger listing than the one kept (which was full) is asked.
    host.answer([job('j-c', 'queued', 0), job('j-b', 'succeeded')]);
    const larger = jobs.list('box', host.ask, 5);
    expect(host.asked).toEqual([2, 2, 5]);
    host.answer([job('j-c', 'queued', 0), job('j-b', 'succeeded'), job('j-a', 'succeeded')]);
    expect(await larger).toHaveLength(3);
  });

  it('an answer overtaken by an event is not kept, and a link that leaves online forgets the host', async () => {
    const sessions = knownSessions(() => 0);
    const { link, events, status } = fakeLink();
    sessions.follow('box', link);
    const host = manualAsk<SessionList>();

    const asked = sessions.list('box', host.ask);
    const pushed = { sessions: [], tmux: { ok: true, message: null, lost_sessions: [], lost_at: null } };
    events.fire({ event: 'sessions.changed', data: pushed });
    const stale: SessionList = { sessions: [], tmux: null };
    host.answer(stale);
    expect(await asked).toBe(stale);
    // What the event said is kept, not the older answer.
    expect(sessions.current('box', undefined)).toEqual(pushed);

    status.fire('offline');
    expect(sessions.current('box', undefined)).toBeUndefined();
  });
});
