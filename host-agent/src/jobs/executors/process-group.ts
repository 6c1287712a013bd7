import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { processStartTime as linuxStartTime } from './sandbox-processes.js';

const run = promisify(execFile);

/**
 * True while a process of the group is still alive. Zombies do not count: a member orphaned by
 * the job's shell is reaped by PID 1 whenever it gets to it (in containers that can take a
 * second or more), and a zombie holds nothing.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    // EPERM: the group exists but is not ours to signal; it is still there.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return process.platform !== 'linux' || hasLiveMember(pgid);
}

/** Scans /proc for a member of the group that is not a zombie. */
function hasLiveMember(pgid: number): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch (error) {
      // Exited while we looked: not a member any more.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') continue;
      throw error;
    }
    // After "pid (comm) ": state, ppid, pgrp.
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/**
 * An identity for a process that survives pid reuse: its start time. On Linux the starttime
 * field of /proc/<pid>/stat (clock ticks since boot); elsewhere `ps -o lstart`.
 * undefined when the process does not exist.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') {
    const ticks = linuxStartTime(pid);
    return ticks === undefined ? undefined : String(ticks);
  }
  try {
    const { stdout } = await run('ps', ['-o', 'lstart=', '-p', String(pid)]);
    const started = stdout.trim();
    return started === '' ? undefined : started;
  } catch (error) {
    // ps exits 1 when there is no such process.
    if ((error as { code?: unknown }).code === 1) return undefined;
    throw error;
  }
}
