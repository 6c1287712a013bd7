import { execFile } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Every process of a shell attempt, wherever it went. A process group alone loses whatever left it:
 * `setsid` (a new session, so a new group), a daemon's double fork (reparented to init, so no
 * parent chain leads back either). What they all keep is the environment the job's shell started
 * with: the executor puts `HANGAR_JOB_ID` and `HANGAR_ATTEMPT` into it, every descendant inherits
 * them, and the kernel shows a process's initial environment to its own user (and root) whatever
 * session or parent it has now (Jenkins finds a build's leftovers the same way, by `BUILD_ID`).
 * A process that starts with neither variable (`env -u HANGAR_JOB_ID setsid …`) and leaves the
 * group has opted out, unless its parent is still one of the job's; so has, unwittingly, one that
 * writes its process title over its environment area (some servers do), which then no longer
 * shows the marks. The sandbox executor's jobs live in a pid namespace of their own; it looks for
 * the same marks only after a crash, for what outlived bubblewrap (sandbox-recovery.ts), with the
 * /proc readers and the kill loop below. The macOS half (`ps -E`) is tested on its parser only:
 * no Mac here.
 */
export interface JobProcessMarks {
  /** The job shell's process group; undefined once that pgid is no longer known to be ours. */
  pgid: number | undefined;
  /** The values of HANGAR_JOB_ID and HANGAR_ATTEMPT; undefined where they are not known. */
  job: { id: string; attempt: number } | undefined;
  /**
   * Linux: when the job's shell started (starttime of /proc/<pid>/stat, clock ticks since boot),
   * where known. Every process of the attempt descends from that shell, so none started earlier:
   * the environment of a process that did is not read (most of a machine's processes, and most of
   * the search's cost). A double-forked, setsid'd leftover started later, so it is still read.
   */
  since?: number;
}

/** A row of the process table, as much as the search needs. */
export interface ProcessRow {
  pid: number;
  ppid: number;
  pgid: number;
  /** Exited, not yet reaped: holds nothing, and cannot be killed any deader. */
  zombie: boolean;
  /** Its initial environment carries the attempt's marks. */
  marked: boolean;
}

/**
 * Pids of the attempt's live processes: the members of its group, those carrying its marks, and
 * every descendant of either. Never the agent itself (it would carry the marks only if it ran
 * inside the very job it supervises).
 */
export async function jobProcesses(marks: JobProcessMarks): Promise<number[]> {
  const rows = process.platform === 'linux' ? await linuxRows(marks) : parsePsRows(await psEnvironment(), marks);
  return selectJobProcesses(rows, marks.pgid).filter((pid) => pid !== process.pid);
}

/** The search over a process table: exported for tests of the platform-neutral part. */
export function selectJobProcesses(rows: readonly ProcessRow[], pgid: number | undefined): number[] {
  const live = rows.filter((row) => !row.zombie);
  const children = new Map<number, number[]>();
  for (const row of live) {
    const siblings = children.get(row.ppid);
    if (siblings === undefined) children.set(row.ppid, [row.pid]);
    else siblings.push(row.pid);
  }
  const found = new Set(live.filter((row) => row.marked || row.pgid === pgid).map((row) => row.pid));
  for (const pid of found) {
    // A Set iterates over what is added while iterating: this walks down to the last descendant.
    for (const child of children.get(pid) ?? []) found.add(child);
  }
  return [...found];
}

/**
 * Linux: /proc, read directly (a `ps` every 25 ms of a cancel would cost more than the scan), in
 * slices of SCAN_SLICE_MS with a turn of the event loop between them: every job's end runs this,
 * and the agent's loop (every keystroke on the host) waits at most one slice, whatever the number
 * of processes.
 *
 * When the job's shell's start is known (`since`), a process that started before it is none of
 * the attempt's, nor the parent of one (a parent starts before its child), nor in its group (that
 * id was the shell's pid, free before): it is left out, and its environment never read. Its start
 * is read once: /proc/<pid>'s inode (number and change time) is made for one process and stays
 * while it lives, and a stat of that directory costs a fifth of reading /proc/<pid>/stat, so
 * a process whose inode is the one seen before with an earlier start is skipped on that alone
 * (a reused pid gets a new inode, so it is read again).
 */
async function linuxRows({ job, since, pgid }: JobProcessMarks): Promise<ProcessRow[]> {
  const rows: ProcessRow[] = [];
  let pids = procPids();
  const listed = new Set(pids);
  /** One of the attempt's was read (a live one marked or in its group): the caller looks again. */
  let foundAny = false;
  let sliceStart = performance.now();
  for (let pass = 1; ; pass++) {
    /** A listed process ended (or is a zombie) before it was read: it may have forked since. */
    let ended = false;
    for (const pid of pids) {
      if (performance.now() - sliceStart >= SCAN_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      let inode: { ino: number; ctimeMs: number } | undefined;
      if (since !== undefined) {
        inode = procDirInode(pid);
        if (inode === undefined) {
          ended = true;
          continue;
        }
        const known = knownStarts.get(pid);
        if (known?.ino === inode.ino && known.ctimeMs === inode.ctimeMs && known.startTime < since) continue;
      }
      const stat = procStat(pid);
      if (stat === undefined) {
        ended = true;
        continue;
      }
      if (inode !== undefined) knownStarts.set(pid, { ...inode, startTime: stat.startTime });
      if (since !== undefined && stat.startTime < since) continue;
      if (stat.zombie) ended = true;
      const marked = !stat.zombie && job !== undefined && carriesMarks(pid, job);
      if (!stat.zombie && (marked || (pgid !== undefined && stat.pgrp === pgid))) foundAny = true;
      rows.push({ pid, ppid: stat.ppid, pgid: stat.pgrp, zombie: stat.zombie, marked });
    }
    // The listing is older than the reads (by slices, with the loop turning between them): a
    // process of the attempt that forked after it and ended before its read (a daemon's double
    // fork) left a child that neither shows. Found nothing else, the kill loop would stop with
    // that child alive: the pids listed since are read too. Bounded, for a machine that starts
    // and ends processes all the time.
    if (!ended || foundAny || pass >= MAX_SCAN_PASSES) break;
    pids = procPids().filter((pid) => !listed.has(pid));
    if (pids.length === 0) break;
    for (const pid of pids) listed.add(pid);
  }
  if (since !== undefined) {
    for (const pid of knownStarts.keys()) if (!listed.has(pid)) knownStarts.delete(pid);
  }
  return rows;
}

/** Listings of /proc in one scan at most (see linuxRows). */
const MAX_SCAN_PASSES = 8;

/** pid → the /proc/<pid> inode seen and the start time read with it (see linuxRows). */
const knownStarts = new Map<number, { ino: number; ctimeMs: number; startTime: number }>();

/** Linux: the identity of /proc/<pid>'s inode, or undefined once the process is gone. */
function procDirInode(pid: number): { ino: number; ctimeMs: number } | undefined {
  try {
    const stats = statSync(`/proc/${pid}`, { throwIfNoEntry: false });
    return stats === undefined ? undefined : { ino: stats.ino, ctimeMs: stats.ctimeMs };
  } catch (error) {
    return quietly(error);
  }
}

/** The longest the /proc scan holds the event loop before it lets other work run. */
const SCAN_SLICE_MS = 1;

/** Linux: the pids /proc lists now. */
export function procPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}

/** What the process table's searches need of /proc/<pid>/stat. */
export interface ProcStat {
  ppid: number;
  pgrp: number;
  /** Clock ticks since boot at which it started: with the pid, an identity pids reused cannot fake. */
  startTime: number;
  /** Exited, not yet reaped (Z), or dead (X): holds nothing, and cannot be killed any deader. */
  zombie: boolean;
}

/** Linux: /proc/<pid>/stat, or undefined once the process is gone. */
export function procStat(pid: number): ProcStat | undefined {
  const stat = readSmall(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // After "pid (comm) ", field 3 on: the name may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so ppid (4) is fields[1], pgrp (5) fields[2], starttime (22) fields[19].
  return {
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    startTime: Number(fields[19]),
    zombie: fields[0] === 'Z' || fields[0] === 'X',
  };
}

/** The environment variables that mark a process as the attempt's: the job's shell starts with them. */
export function attemptMarks(job: { id: string; attempt: number }): { HANGAR_JOB_ID: string; HANGAR_ATTEMPT: string } {
  return { HANGAR_JOB_ID: job.id, HANGAR_ATTEMPT: String(job.attempt) };
}

/**
 * Linux: whether the process's initial environment (/proc/<pid>/environ) carries both of the
 * attempt's marks; false once it is gone or when it is another user's (not ours to read).
 */
export function carriesMarks(pid: number, job: { id: string; attempt: number }): boolean {
  // NUL-separated NAME=value; a leading NUL lets the first variable match like the others.
  const environ = `\0${readQuietly(`/proc/${pid}/environ`) ?? ''}`;
  return Object.entries(attemptMarks(job)).every(([name, value]) => environ.includes(`\0${name}=${value}\0`));
}

/**
 * A file of /proc, or undefined when the process exited while we looked (ENOENT, ESRCH) or is
 * another user's (EACCES, EPERM: its environment is not ours to read, and it is not the job's).
 */
export function readQuietly(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    return quietly(error);
  }
}

/** One buffer for every stat read: a stat line is a few hundred bytes (the name at most 64). */
const statBuffer = Buffer.allocUnsafe(4096);

/**
 * readQuietly for a file that fits statBuffer, read once into it: procfs answers a stat in one
 * read, and readFileSync's extra fstat, reads and buffers were a quarter of a scan's cost.
 */
function readSmall(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    return quietly(error);
  }
  try {
    const length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
    return statBuffer.toString('latin1', 0, length);
  } catch (error) {
    return quietly(error);
  } finally {
    closeSync(fd);
  }
}

/** undefined for the errors of a process that is gone or not ours (see readQuietly), else throws. */
function quietly(error: unknown): undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return undefined;
  throw error;
}

/**
 * macOS (and other BSDs): `ps -E` appends each process's initial environment to its command line
 * (for the user's own processes; root sees all). `-ww`: no truncation, or the marks could be cut off.
 */
async function psEnvironment(): Promise<string> {
  const { stdout } = await run('ps', ['-axEww', '-o', 'pid=,ppid=,pgid=,stat=,command='], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Rows of `ps -o pid=,ppid=,pgid=,stat=,command=` output whose command has the environment after it. */
export function parsePsRows(table: string, { job }: Pick<JobProcessMarks, 'job'>): ProcessRow[] {
  const marks = Object.entries(job ? attemptMarks(job) : {}).map(
    ([name, value]) => new RegExp(`(^|\\s)${name}=${escapeRegExp(value)}(\\s|$)`),
  );
  const rows: ProcessRow[] = [];
  for (const line of table.split('\n')) {
    const match = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s?(.*)$/.exec(line);
    if (!match) continue;
    const [, pid, ppid, pgid, stat, command] = match;
    rows.push({
      pid: Number(pid),
      ppid: Number(ppid),
      pgid: Number(pgid),
      zombie: stat!.startsWith('Z'),
      marked: marks.length > 0 && marks.every((mark) => mark.test(command!)),
    });
  }
  return rows;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * An identity for a process that survives pid reuse: its start time. On Linux the starttime
 * field of /proc/<pid>/stat (clock ticks since boot); elsewhere `ps -o lstart`.
 * undefined when the process does not exist.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') {
    const ticks = procStat(pid)?.startTime;
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

/** How often a waiting cancel looks whether the attempt's processes are gone. */
const POLL_MS = 25;

/** Signals the group (all at once, as the kernel does it) and every process found apart from it. */
export async function signalJob(marks: JobProcessMarks, signal: NodeJS.Signals): Promise<void> {
  if (marks.pgid !== undefined) signalQuietly(-marks.pgid, signal);
  for (const pid of await jobProcesses(marks)) signalQuietly(pid, signal);
}

/** Resolves true once no process of the attempt is alive, false if some still are after `ms`. */
export async function waitJobGone(marks: JobProcessMarks, ms: number): Promise<boolean> {
  return pollUntil(async () => (await jobProcesses(marks)).length === 0, ms);
}

/** Asks `done` every POLL_MS, at least once, until it says true (resolves true) or `ms` have passed (false). */
export async function pollUntil(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * SIGTERM to every process of the attempt, SIGKILL to whatever is left after graceMs (and to
 * whatever a dying process started meanwhile); resolves when nothing of it remains (or, for a
 * process stuck in the kernel, 5 s after SIGKILL).
 */
export async function terminateJob(marks: JobProcessMarks, graceMs: number): Promise<void> {
  await signalJob(marks, 'SIGTERM');
  if (await waitJobGone(marks, graceMs)) return;
  await killJob(marks, 5000);
}

/** SIGKILL to every process of the attempt until none is left; false if some still are after `ms`. */
export async function killJob(marks: JobProcessMarks, ms: number): Promise<boolean> {
  return killUntilGone(() => jobProcesses(marks), ms, marks.pgid);
}

/**
 * SIGKILL to `group` (all at once, as the kernel does it) and to every pid `find` finds, again
 * and again until it finds none: a process may fork between a scan and its kill. False if some
 * are still found after `ms`.
 */
export async function killUntilGone(
  find: () => number[] | Promise<number[]>,
  ms: number,
  group?: number,
): Promise<boolean> {
  return pollUntil(async () => {
    if (group !== undefined) signalQuietly(-group, 'SIGKILL');
    const found = await find();
    for (const pid of found) signalQuietly(pid, 'SIGKILL');
    return found.length === 0;
  }, ms);
}

/** Sends a signal; a process gone since the scan (ESRCH), or not ours (EPERM: its pid went to another user), is no error. */
export function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH' && code !== 'EPERM') throw error;
  }
}
