import { FINAL_JOB_STATES, type JobInfo } from '@hangar/shared';
import { HostListings } from './host-listings.js';

interface Known {
  /** The host's newest jobs, newest first: exactly its top `limit` (fewer: it has no more). */
  jobs: JobInfo[];
  limit: number;
}

/**
 * Each linked host's recent jobs as its job.updated events keep them (issue 18: `hangar jobs`
 * through a running core asked all ten hosts each time). The list a host gave (job.list: newest
 * first, by the agent's order) is kept, and each event applied to it: a job already listed is
 * replaced where it is, or moved to the top when it was queued again (a retry moves it to the back
 * of the queue: the top of the list); a job not listed is new and goes on top. What cannot be
 * placed (an event for a job beyond a full list that is not a new one) forgets the list, and the
 * next listing asks. No event tells of jobs the agent's retention removed: each answer from here
 * asks the host again in the background (at most once a second), so the next listing has it.
 */
export type KnownJobs = HostListings<Known, number, JobInfo[], 'job.updated'>;

export function knownJobs(now?: () => number): KnownJobs {
  return new HostListings(
    {
      event: 'job.updated',
      refreshGapMs: 1000,
      // A smaller listing kept whole (it had fewer jobs than its limit) answers a larger one too.
      read: (known, limit) =>
        known.limit < limit && known.jobs.length >= known.limit ? undefined : known.jobs.slice(0, limit),
      keep: (jobs, limit) => ({ jobs, limit }),
      refresh: (known, limit) => Math.max(known.limit, limit),
      merge: (known, { job }) => known && placeJob(known, job),
    },
    now,
  );
}

/** The known list with `job` placed in it; undefined where it cannot be placed. */
function placeJob(known: Known, job: JobInfo): Known | undefined {
  const at = known.jobs.findIndex((j) => j.id === job.id);
  if (at >= 0) {
    const before = known.jobs[at]!;
    const retried = job.state === 'queued' && FINAL_JOB_STATES.includes(before.state);
    if (!retried) return { jobs: known.jobs.map((j, i) => (i === at ? job : j)), limit: known.limit };
    return { jobs: [job, ...known.jobs.slice(0, at), ...known.jobs.slice(at + 1)], limit: known.limit };
  }
  // Not listed: a new job (submitted: queued, never started), or a job beyond a full list.
  const isNew = job.state === 'queued' && job.attempt === 0;
  if (known.jobs.length >= known.limit && !isNew) return undefined;
  return { jobs: [job, ...known.jobs].slice(0, known.limit), limit: known.limit };
}
