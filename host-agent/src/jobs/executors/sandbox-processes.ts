import { readlinkSync } from 'node:fs';
import { pollUntil, procPids, procStat, signalQuietly } from './job-processes.js';

/**
 * Linux process-table reads the sandbox needs to prove what is ours. Everything here reads /proc
 * directly: a pid alone is not an identity (pids are reused), a pid plus its start time is.
 */

/** The inode of a process's pid namespace, or undefined if it is gone or not ours to read. */
export function pidNamespaceOf(pid: number): number | undefined {
  try {
    const link = readlinkSync(`/proc/${pid}/ns/pid`);
    const match = /\[(\d+)\]/.exec(link);
    return match ? Number(match[1]) : undefined;
  } catch (error) {
    if (isGone(error)) return undefined;
    throw error;
  }
}

/** Host pids of every process living in the given pid namespace. */
export function processesInPidNamespace(namespace: number): number[] {
  return procPids().filter((pid) => pidNamespaceOf(pid) === namespace);
}

/** Signals every process of a pid namespace (a sandbox), and the process group that holds its bwrap. */
export function signalSandbox(pgid: number, namespace: number | undefined, signal: NodeJS.Signals): void {
  if (namespace !== undefined) {
    for (const pid of processesInPidNamespace(namespace)) signalQuietly(pid, signal);
  }
  signalQuietly(-pgid, signal);
}

/** Waits until no process is left in the namespace and the bwrap pid is gone, or the deadline passes. */
export async function waitSandboxGone(pid: number, namespace: number | undefined, timeoutMs: number): Promise<boolean> {
  return pollUntil(() => {
    const inside = namespace === undefined ? [] : processesInPidNamespace(namespace);
    // A zombie bwrap (exited, not yet reaped by Node) still has a /proc entry but no start-time change;
    // what matters is that nothing inside the namespace runs anymore.
    const bwrap = procStat(pid);
    return inside.length === 0 && (bwrap === undefined || bwrap.zombie);
  }, timeoutMs);
}

function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  // EACCES/EPERM: another user's process; for our purposes it is not one of ours.
  return code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM';
}
