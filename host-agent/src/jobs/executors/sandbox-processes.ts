import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Linux process-table reads the sandbox needs to prove what is ours. Everything here reads /proc
 * directly: a pid alone is not an identity (pids are reused), a pid plus its start time is.
 */

/** Clock ticks since boot at which the process started (field 22 of /proc/<pid>/stat), or undefined if gone. */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if (isGone(error)) return undefined;
    throw error;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const value = Number(fields[19]);
  return Number.isFinite(value) ? value : undefined;
}

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
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pidNamespaceOf(pid) === namespace) pids.push(pid);
  }
  return pids;
}

/** Sends a signal, treating "already gone" as success. */
export function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
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
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const inside = namespace === undefined ? [] : processesInPidNamespace(namespace);
    // A zombie bwrap (exited, not yet reaped by Node) still has a /proc entry but no start-time change;
    // what matters is that nothing inside the namespace runs anymore.
    const bwrapAlive = processStartTime(pid) !== undefined && !isZombie(pid);
    if (inside.length === 0 && !bwrapAlive) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch (error) {
    if (isGone(error)) return true;
    throw error;
  }
}

function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  // EACCES/EPERM: another user's process; for our purposes it is not one of ours.
  return code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM';
}
