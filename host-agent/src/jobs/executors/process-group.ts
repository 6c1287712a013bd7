import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { processStartTime as linuxStartTime } from './sandbox-processes.js';

const run = promisify(execFile);
/** How often a waiting cancel looks whether the group is gone. */
const POLL_MS = 25;

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

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Resolves true once the group is gone, false if it still exists after `ms`. */
export async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return true;
}

/**
 * SIGTERM to the whole group, SIGKILL to whatever is left after graceMs; resolves when nothing
 * of the group remains (or, for a process stuck in the kernel, 5 s after SIGKILL).
 */
export async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  if (await waitGroupGone(pgid, graceMs)) return;
  signalGroup(pgid, 'SIGKILL');
  await waitGroupGone(pgid, 5000);
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

/**
 * After an agent crash: kills the group `pgid` only if it is still the one we started. The leader
 * alive with another start time means the pid was reused by a stranger; leave it alone. The
 * leader gone but the group alive means our leftovers (a pgid is not handed out again while
 * its group exists).
 */
export async function killRecoveredGroup(pgid: number, started: string, graceMs: number): Promise<boolean> {
  const leaderStarted = await processStartTime(pgid);
  if (leaderStarted !== undefined && leaderStarted !== started) return false;
  if (!groupAlive(pgid)) return false;
  await terminateGroup(pgid, graceMs);
  return true;
}
