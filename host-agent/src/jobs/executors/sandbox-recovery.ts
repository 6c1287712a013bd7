import { existsSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { carriesMarks, killUntilGone, procPids, procStat, readQuietly, signalQuietly } from './job-processes.js';
import { signalSandbox, waitSandboxGone } from './sandbox-processes.js';

/**
 * What a sandbox attempt checkpoints, and how a restarted agent ends what a lost one left.
 *
 * bwrap's pid (which leads the attempt's process group) with its start time identifies bwrap while
 * it lives. Once it is gone, neither its group id nor the sandbox's pid-namespace inode proves
 * anything: both numbers are handed out again once free (a stranger's group, another attempt's
 * sandbox). What a lost sandbox can leave without bwrap is its init (reparented to the host's
 * init, with the job under it) and bwrap's first process stuck before it made the sandbox's
 * session, both forks of bwrap that never exec'd, and the watcher beside bwrap: every one of them
 * has the launcher's environment, which carries the attempt's marks (`HANGAR_JOB_ID`,
 * `HANGAR_ATTEMPT`, as the shell executor's jobs do), and bwrap --setenv's the same marks into the
 * job's. So a process is the attempt's when its initial environment has both marks, its real uid
 * is the one the attempt ran as, and it started no earlier than the launcher. Killing the
 * sandbox's init takes the whole pid namespace with it (the kernel kills every process in it), so
 * a job's process that cleared its environment goes too. With a cgroup (named after the attempt)
 * every process in it is the attempt's: cgroup.kill, or each of cgroup.procs, then the cgroup goes.
 */
export const SandboxCheckpoint = z.object({
  /** The launcher's pid, which becomes bwrap's (exec all the way) and leads the attempt's group. */
  pid: z.number().int().positive(),
  /** Clock ticks since boot at which the launcher started (field 22 of /proc/<pid>/stat). */
  startTime: z.number().int().nonnegative().optional(),
  /** The sandbox's pid-namespace inode: used only without marks, and only while bwrap (pid, start time) lives. */
  pidNamespace: z.number().int().positive().optional(),
  /** The marks in the environment of every process of the attempt (absent from older checkpoints). */
  jobId: z.string().min(1).optional(),
  attempt: z.number().int().positive().optional(),
  /** The host uid the attempt's processes run as (the job user, or the agent's own). */
  uid: z.number().int().nonnegative().optional(),
  /** The attempt's cgroup, when limits used one. */
  cgroupDir: z.string().optional(),
});
export type SandboxCheckpoint = z.infer<typeof SandboxCheckpoint>;

/** Kills what a lost attempt left, from its checkpoint; safe when all of it is already gone. */
export async function recoverSandbox(state: Record<string, unknown>, timeoutMs = 5_000): Promise<void> {
  const parsed = SandboxCheckpoint.safeParse(state);
  if (!parsed.success) return;
  const checkpoint = parsed.data;
  const { pid, startTime } = checkpoint;
  const marked = checkpoint.jobId !== undefined && checkpoint.attempt !== undefined;
  // bwrap itself, if it still lives (same pid, same start time): its group is ours. Its namespace
  // is looked up by number only for a checkpoint without marks (written before them): the marks
  // find the sandbox's init without it, so a number handed out again is never trusted.
  const pidNamespace = marked ? undefined : checkpoint.pidNamespace;
  const bwrapLives = startTime !== undefined && procStat(pid)?.startTime === startTime;
  if (bwrapLives) signalSandbox(pid, pidNamespace, 'SIGKILL');
  if (checkpoint.cgroupDir !== undefined) killCgroup(checkpoint.cgroupDir);
  const deadline = Date.now() + timeoutMs;
  if (marked) await killUntilGone(() => markedProcesses(checkpoint), timeoutMs);
  if (bwrapLives) await waitSandboxGone(pid, pidNamespace, Math.max(0, deadline - Date.now()));
  if (checkpoint.cgroupDir !== undefined) removeCgroup(checkpoint.cgroupDir);
}

/** Live processes with the attempt's marks, its uid, started no earlier than its launcher; never the agent. */
function markedProcesses(checkpoint: SandboxCheckpoint): number[] {
  const job = { id: checkpoint.jobId!, attempt: checkpoint.attempt! };
  return procPids().filter((pid) => {
    if (pid === process.pid) return false;
    const stat = procStat(pid);
    if (stat === undefined || stat.zombie) return false;
    if (checkpoint.startTime !== undefined && stat.startTime < checkpoint.startTime) return false;
    if (checkpoint.uid !== undefined && realUid(pid) !== checkpoint.uid) return false;
    return carriesMarks(pid, job);
  });
}

function realUid(pid: number): number | undefined {
  const status = readQuietly(`/proc/${pid}/status`);
  const match = status === undefined ? null : /^Uid:\s+(\d+)/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/**
 * Kills every process of the attempt's cgroup: at once with cgroup.kill (Linux 5.14+), else each
 * pid cgroup.procs lists. Only a cgroup the agent names for an attempt (`hangar-…`) is touched.
 */
function killCgroup(dir: string): void {
  if (!basename(dir).startsWith('hangar-') || !existsSync(join(dir, 'cgroup.procs'))) return;
  if (existsSync(join(dir, 'cgroup.kill'))) {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    }
  }
  for (const line of (readQuietly(join(dir, 'cgroup.procs')) ?? '').split('\n')) {
    if (/^\d+$/.test(line)) signalQuietly(Number(line), 'SIGKILL');
  }
}

/** The attempt's cgroup, once empty (its limits were never cleaned up: the agent died first). */
function removeCgroup(dir: string): void {
  if (!basename(dir).startsWith('hangar-')) return;
  try {
    rmdirSync(dir);
  } catch (error) {
    // ENOENT: gone already; EBUSY: a process is still dying in it, and the cgroup stays behind.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EBUSY') throw error;
  }
}
