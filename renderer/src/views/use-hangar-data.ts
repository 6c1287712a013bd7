import { useCallback, useEffect, useRef, useState } from 'react';
import {
  describeError,
  type CoreApi,
  type HostView,
  type JobInfo,
  type SessionInfo,
  type TmuxServerState,
} from '../api/index.js';

export interface HostSessions {
  sessions: SessionInfo[];
  error: string | null;
  /** Whether the host's tmux server went away with sessions on it (null: the host was not reached). */
  tmux: TmuxServerState | null;
}

export interface JobEntry {
  host: string;
  job: JobInfo;
}

export interface HangarData {
  hosts: HostView[] | undefined;
  hostsError: string | undefined;
  sessions: Record<string, HostSessions>;
  /** `host/session` of sessions that rang their bell since the user last opened them. */
  bells: ReadonlySet<string>;
  clearBell(host: string, session: string): void;
  jobs: JobEntry[];
  refreshSessions(): void;
  refreshJobs(): void;
  /** A job this window just submitted or retried, shown before its first event arrives. */
  addJob(entry: JobEntry): void;
}

/**
 * Sessions are pushed when they change; a slow poll on top catches what no event tells (an
 * agent that cannot watch for changes, a tmux server that went away with its last session).
 */
const SESSION_POLL_MS = 30_000;

/** Hosts, sessions and jobs (each pushed on change) as the UI shows them. */
export function useHangarData(api: CoreApi): HangarData {
  const [hosts, setHosts] = useState<HostView[]>();
  const [hostsError, setHostsError] = useState<string>();
  const [sessions, setSessions] = useState<Record<string, HostSessions>>({});
  const [bells, setBells] = useState<ReadonlySet<string>>(new Set());
  const clearBell = useCallback(
    (host: string, session: string) =>
      setBells((current) => {
        if (!current.has(`${host}/${session}`)) return current;
        const next = new Set(current);
        next.delete(`${host}/${session}`);
        return next;
      }),
    [],
  );
  const [jobs, setJobs] = useState<JobEntry[]>([]);
  const jobsRef = useRef<JobEntry[]>([]);
  const showJobs = useCallback((next: JobEntry[]) => {
    jobsRef.current = sortJobs(next);
    setJobs(jobsRef.current);
  }, []);

  const refreshSessions = useCallback(() => {
    api.call('sessions.list', {}).then(
      (result) =>
        setSessions(
          Object.fromEntries(
            result.hosts.map((h) => [h.host, { sessions: h.sessions, error: h.error?.message ?? null, tmux: h.tmux }]),
          ),
        ),
      (error: unknown) => setHostsError(describeError(error)),
    );
  }, [api]);

  const refreshJobs = useCallback(() => {
    api.call('jobs.list', {}).then(
      (result) => showJobs(result.hosts.flatMap((h) => h.jobs.map((job) => ({ host: h.host, job })))),
      (error: unknown) => setHostsError(describeError(error)),
    );
  }, [api, showJobs]);

  useEffect(() => {
    const subscriptions = [
      api.on('hosts.changed', ({ hosts }) => {
        setHosts(hosts);
        setHostsError(undefined);
      }),
      api.on('session.bell', ({ host, name }) => setBells((current) => new Set(current).add(`${host}/${name}`))),
      api.on('sessions.changed', ({ host, sessions, tmux }) =>
        setSessions((current) => ({ ...current, [host]: { sessions, error: null, tmux } })),
      ),
      api.on('job.updated', (entry) => {
        const current = jobsRef.current;
        const same = (j: JobEntry) => j.host === entry.host && j.job.id === entry.job.id;
        showJobs([entry, ...current.filter((j) => !same(j))]);
      }),
    ];
    api.call('hosts.list', {}).then(
      (result) => setHosts(result.hosts),
      (error: unknown) => setHostsError(describeError(error)),
    );
    refreshSessions();
    refreshJobs();
    const poll = setInterval(refreshSessions, SESSION_POLL_MS);
    return () => {
      clearInterval(poll);
      for (const subscription of subscriptions) void subscription.dispose();
    };
  }, [api, refreshSessions, refreshJobs, showJobs]);

  const addJob = useCallback(
    (entry: JobEntry) =>
      showJobs([entry, ...jobsRef.current.filter((j) => !(j.host === entry.host && j.job.id === entry.job.id))]),
    [showJobs],
  );
  return { hosts, hostsError, sessions, bells, clearBell, jobs, refreshSessions, refreshJobs, addJob };
}

function sortJobs(jobs: JobEntry[]): JobEntry[] {
  return [...jobs].sort((a, b) => b.job.created_at - a.job.created_at);
}
