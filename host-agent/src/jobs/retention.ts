import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobStore } from './job-store.js';
import type { WorkspaceStore } from './workspaces.js';

export interface RetentionPolicy {
  /** Finished jobs (log, artifacts) and unused workspaces older than this are removed. */
  maxAgeMs: number;
  /** Above this many bytes of logs, artifacts and workspaces, the oldest go first. */
  maxBytes: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { maxAgeMs: 14 * 24 * 3600 * 1000, maxBytes: 20 * 1024 ** 3 };

export interface PruneInput {
  jobs: JobStore;
  workspaces: WorkspaceStore;
  jobsDir: string;
  policy: RetentionPolicy;
  /** Workspaces that queued or running jobs still need. */
  inUse: ReadonlySet<string>;
  now: number;
}

/**
 * Removes finished jobs and unused workspaces past the policy, oldest first. Queued and running
 * jobs are never touched, nor the workspaces they will unpack. Returns what was removed.
 */
export async function prune(input: PruneInput): Promise<{ jobs: string[]; workspaces: string[] }> {
  const { jobs, workspaces, policy, now } = input;
  const removed = { jobs: [] as string[], workspaces: [] as string[] };
  type Candidate = { kind: 'job' | 'workspace'; key: string; at: number; bytes: number };
  const candidates: Candidate[] = [
    ...jobs.finishedJobSizes().map((j) => ({ kind: 'job' as const, key: j.id, at: j.finishedAt, bytes: j.bytes })),
    ...workspaces
      .sizes()
      .filter((w) => !input.inUse.has(w.hash))
      .map((w) => ({ kind: 'workspace' as const, key: w.hash, at: w.lastUsedAt, bytes: w.bytes })),
  ].sort((a, b) => a.at - b.at);
  let total = candidates.reduce((sum, c) => sum + c.bytes, 0);
  for (const candidate of candidates) {
    const expired = candidate.at < now - policy.maxAgeMs;
    if (!expired && total <= policy.maxBytes) break;
    if (candidate.kind === 'job') {
      jobs.deleteJob(candidate.key);
      await rm(join(input.jobsDir, candidate.key), { recursive: true, force: true });
      removed.jobs.push(candidate.key);
    } else {
      workspaces.remove(candidate.key);
      removed.workspaces.push(candidate.key);
    }
    total -= candidate.bytes;
  }
  return removed;
}
