import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';

/** Asks `check` every 50 ms until it gives a value (not undefined), which it resolves with. */
export async function until<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Pids whose command line contains `needle` (the process table, as `ps` shows it). */
export function processesMatching(needle: string): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return table
    .split('\n')
    .filter((line) => line.includes(needle) && !line.includes('ps -eo'))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

/** Pids of the processes whose whole command line is `command`, not those that only pass it on (a shell, a launcher). */
export function processesRunning(command: string): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return table
    .split('\n')
    .map((line) => /^\s*(\d+) (.*)$/.exec(line))
    .filter((match) => match?.[2] === command)
    .map((match) => Number(match![1]));
}

/** SIGKILL to each pid, for a test's cleanup: one that is gone meanwhile is fine. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * `sleep <seconds>.<ten random digits>`: a sleep no other process on the machine runs, for a job to
 * start and processesMatching to find (and find gone after a cancel). Other test files run sleeps
 * beside this one (`sleep 300` in tmux-loss and host-text, others in jobs): a fixed duration, or
 * one made from the pid, can be theirs too, and ps then sees their sleep as the job's leftover.
 */
export function uniqueSleep(seconds = 300): string {
  return `sleep ${seconds}.${String(randomInt(10_000_000_000)).padStart(10, '0')}`;
}
