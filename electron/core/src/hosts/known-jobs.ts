import { FINAL_JOB_STATES, type Disposable, type JobInfo } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/** At most one background ask per host in this long (see KnownJobs.list). */
const REFRESH_GAP_MS = 1000;

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
 * asks the host again in the background (at most once per REFRESH_GAP_MS), so the next listing
 * has it. A link that is not up forgets the host: it is asked (and reported unreachable) as before.
 */
export class KnownJobs {
  private readonly known = new Map<string, Known>();
  /** Bumped on every event or change: an answer asked for before the bump is older than it. */
  private readonly generations = new Map<string, number>();
  private readonly refreshed = new Map<string, { at: number; pending: boolean }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Follows the host's job events and its link for as long as the connection lives. */
  follow(name: string, connection: HostConnection): Disposable[] {
    return [
      connection.on('job.updated', ({ job }) => this.updated(name, job)),
      connection.onStatus((status) => {
        if (status !== 'online') this.forget(name);
      }),
    ];
  }

  /** The host's newest `limit` jobs if this core holds them (a listing as large or larger was kept current). */
  current(name: string, limit: number): JobInfo[] | undefined {
    const known = this.known.get(name);
    if (!known || (known.limit < limit && known.jobs.length >= known.limit)) return undefined;
    return known.jobs.slice(0, limit);
  }

  /** The known list (and `ask` again behind it), else `ask`'s answer, kept. */
  async list(name: string, limit: number, ask: (limit: number) => Promise<JobInfo[]>): Promise<JobInfo[]> {
    const current = this.current(name, limit);
    if (!current) return this.ask(name, limit, ask);
    const refresh = this.refreshed.get(name);
    if (!refresh?.pending && this.now() - (refresh?.at ?? 0) >= REFRESH_GAP_MS) {
      const state = { at: this.now(), pending: true };
      this.refreshed.set(name, state);
      const known = this.known.get(name)!;
      this.ask(name, Math.max(known.limit, limit), ask).then(
        () => (state.pending = false),
        () => {
          state.pending = false;
          this.forget(name);
        },
      );
    }
    return current;
  }

  /** The host's jobs may have changed in a way no event tells: the next listing asks it. */
  forget(name: string): void {
    this.bump(name);
    this.known.delete(name);
  }

  private async ask(name: string, limit: number, ask: (limit: number) => Promise<JobInfo[]>): Promise<JobInfo[]> {
    const generation = this.generations.get(name) ?? 0;
    const jobs = await ask(limit);
    if ((this.generations.get(name) ?? 0) === generation) this.known.set(name, { jobs, limit });
    return jobs;
  }

  private updated(name: string, job: JobInfo): void {
    this.bump(name);
    const known = this.known.get(name);
    if (!known) return;
    const at = known.jobs.findIndex((j) => j.id === job.id);
    const full = known.jobs.length >= known.limit;
    if (at >= 0) {
      const before = known.jobs[at]!;
      const retried = job.state === 'queued' && FINAL_JOB_STATES.includes(before.state);
      if (!retried) {
        known.jobs = known.jobs.map((j, i) => (i === at ? job : j));
        return;
      }
      known.jobs = [job, ...known.jobs.slice(0, at), ...known.jobs.slice(at + 1)];
      return;
    }
    // Not listed: a new job (submitted: queued, never started), or a job beyond a full list.
    const isNew = job.state === 'queued' && job.attempt === 0;
    if (full && !isNew) {
      this.known.delete(name);
      return;
    }
    known.jobs = [job, ...known.jobs].slice(0, known.limit);
  }

  private bump(name: string): void {
    this.generations.set(name, (this.generations.get(name) ?? 0) + 1);
  }
}
