import {
  HangarError,
  closeReasonError,
  followCoreJobLog,
  formatBytes,
  type CoreApi,
  type CoreCallParams,
  type JobDetail,
  type JobInfo,
} from '@hangar/shared';
import { fstatSync, writevSync } from 'node:fs';

/** Where a followed log goes (logPrinter is the one this command uses). */
export interface LogSink {
  /** Bytes in order; call `consumed()` once they are written out, which lets the host send more. */
  data(chunk: { attempt: number; data: Uint8Array }, consumed: () => void): void;
  /** A new attempt's log starts (the first one, and each retry while following). */
  attempt?(attempt: number): void;
  /** The host link dropped ('reconnecting') or came back and the log resumes at the same byte ('resumed'). */
  status?(status: 'reconnecting' | 'resumed'): void;
}

/**
 * Follows a job's log through the core (jobs.logs) into `sink`; resolves once the log ended (the
 * attempt, or with through_retries the job), rejects with the error that ended it otherwise.
 */
export async function followLog(
  api: CoreApi,
  params: Omit<CoreCallParams<'jobs.logs'>, 'stream_id'>,
  sink: LogSink,
): Promise<void> {
  const log = await followCoreJobLog(api, params, {
    data: (data, attempt, done) => sink.data({ attempt, data }, done),
    attempt: (attempt) => sink.attempt?.(attempt),
    link: (status) => sink.status?.(status),
  });
  const end = await log.ended;
  if (end.code !== 'log_end') throw closeReasonError(end);
}

/**
 * Statuses of `hangar run` (and `hangar logs --follow`) once the job has ended: the job's own
 * exit status when it ran to completion, else one of these. They sit above what commands usually
 * return and match shell conventions where one exists (`timeout` exits 124, Ctrl-C 130).
 */
export const JOB_EXIT = {
  timedOut: 124,
  lost: 125,
  /** Failed without an exit status: the executor or workspace could not start the command. */
  couldNotRun: 126,
  cancelled: 130,
} as const;

export function jobExitStatus(job: Pick<JobInfo, 'state' | 'exit_code'>): number {
  switch (job.state) {
    case 'succeeded':
      return 0;
    case 'failed':
      return job.exit_code !== null && job.exit_code !== 0 ? job.exit_code & 0xff || 1 : JOB_EXIT.couldNotRun;
    case 'timed_out':
      return JOB_EXIT.timedOut;
    case 'cancelled':
      return JOB_EXIT.cancelled;
    case 'lost':
      return JOB_EXIT.lost;
    default:
      return 1;
  }
}

/** The last line about a finished job, for stderr. */
export function describeEnd(job: JobDetail): string {
  const attempts = job.attempt > 1 ? ` after ${job.attempt} attempts` : '';
  switch (job.state) {
    case 'succeeded':
      return `job ${job.id} succeeded${attempts}`;
    case 'failed':
      // A command that exited 0 fails only for what came after it (its artifacts): say that, not "status 0".
      return job.exit_code !== null && job.exit_code !== 0
        ? `job ${job.id} failed with exit status ${job.exit_code}${attempts}`
        : `job ${job.id} failed${attempts}: ${job.error ?? 'no exit status'}`;
    case 'timed_out':
      return `job ${job.id} timed out after ${formatDuration(job.spec.timeout_ms)}`;
    case 'cancelled':
      return `job ${job.id} was cancelled`;
    case 'lost':
      return `job ${job.id} was lost (its host restarted mid-run${job.error ? `: ${job.error}` : ''})`;
    default:
      return `job ${job.id} is ${job.state}`;
  }
}

/**
 * Writes log bytes raw (colours and all) and acks them once the terminal or pipe took them, so a
 * slow reader slows the host rather than growing our memory. Retries get a visible separator.
 *
 * The pieces that arrive together (one read of the core's socket holds several) leave in one
 * write at the end of the microtask: to a file with one writev, elsewhere corked (a pipe's
 * socket writes them with one writev too), where a write per piece (16 KiB of a job's output)
 * cost a system call and the stream's bookkeeping each.
 */
export function logPrinter(
  out: NodeJS.WriteStream,
  notes: NodeJS.WriteStream,
): LogSink & {
  endsWithNewline(): boolean;
  /** Resolves once every byte given to it is written out (before a lane writes to `out` itself). */
  drained(): Promise<void>;
  /** Bytes were written to `out` around it (a lane), the last of them this one. */
  wroteElsewhere(lastByte: number): void;
} {
  let lastByte = 0x0a;
  let firstAttempt: number | undefined;
  const file = regularFileFd(out);
  let pieces: Uint8Array[] = [];
  let dones: (() => void)[] = [];
  let flushQueued = false;
  const flush = (): void => {
    flushQueued = false;
    if (pieces.length === 0) return;
    const batch = pieces;
    const consumed = dones;
    pieces = [];
    dones = [];
    if (file !== undefined && !out.destroyed && out.writableLength === 0) {
      try {
        writeAllSync(file, batch);
      } catch (error) {
        out.destroy(error as Error);
        return;
      }
      for (const done of consumed) done();
      return;
    }
    if (batch.length > 1) out.cork();
    for (let i = 0; i < batch.length; i++) out.write(batch[i]!, consumed[i]!);
    if (batch.length > 1) out.uncork();
  };
  return {
    data(chunk, consumed) {
      if (chunk.data.length === 0) {
        consumed();
        return;
      }
      lastByte = chunk.data[chunk.data.length - 1]!;
      pieces.push(chunk.data);
      dones.push(consumed);
      if (flushQueued) return;
      flushQueued = true;
      queueMicrotask(flush);
    },
    attempt(attempt) {
      flush();
      firstAttempt ??= attempt;
      if (attempt === firstAttempt) return;
      const gap = lastByte === 0x0a ? '' : '\n';
      lastByte = 0x0a;
      out.write(gap, () => notes.write(`── attempt ${attempt} ──\n`));
    },
    status(status) {
      // After the log bytes that came before it: they may still wait for this turn's batch, or
      // in a pipe's queue (then the note waits for them; bytes after it may overtake it there).
      flush();
      const note =
        status === 'reconnecting' ? `\nhangar: link lost — reconnecting…\n` : `hangar: reconnected; log resumed\n`;
      if (out.writableLength === 0) notes.write(note);
      else out.write('', () => notes.write(note));
    },
    endsWithNewline: () => {
      flush();
      return lastByte === 0x0a;
    },
    drained: () => {
      flush();
      if (out.writableLength === 0) return Promise.resolve();
      return new Promise<void>((resolve) => out.write('', () => resolve()));
    },
    wroteElsewhere: (last) => {
      lastByte = last;
    },
  };
}

/** `out`'s descriptor when it is a regular file (Node writes those synchronously anyway). */
function regularFileFd(out: NodeJS.WriteStream): number | undefined {
  const fd = (out as { fd?: unknown }).fd;
  if (typeof fd !== 'number') return undefined;
  try {
    return fstatSync(fd).isFile() ? fd : undefined;
  } catch {
    return undefined;
  }
}

/** Writes every byte of `pieces` to `fd` (writev; a short write goes on where it stopped). */
function writeAllSync(fd: number, pieces: Uint8Array[]): void {
  let rest = pieces;
  while (rest.length > 0) {
    let written = writevSync(fd, rest);
    let i = 0;
    while (i < rest.length && written >= rest[i]!.length) written -= rest[i++]!.length;
    rest = rest.slice(i);
    if (written > 0) rest[0] = rest[0]!.subarray(written);
  }
}

/** `90s`, `60m`, `1h30m`, `2d`; a bare number is seconds. */
export function parseDuration(text: string, option: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  let rest = trimmed;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/.exec(rest);
    if (!match) throw new HangarError('E_BAD_REQUEST', `${option} ${text}: expected a duration like 90s, 60m or 1h30m`);
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  if (total <= 0) throw new HangarError('E_BAD_REQUEST', `${option} ${text}: must be longer than zero`);
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(ms / 3_600_000)}h${String(Math.round((ms % 3_600_000) / 60_000)).padStart(2, '0')}m`;
}

const SIZE_UNITS_MIB: Record<string, number> = { k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };

/** A memory size in MiB: `512M`, `2G`, `1.5GiB`, or a bare number of MiB. */
export function parseMemory(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?)?$/i.exec(text.trim());
  if (!match) throw new HangarError('E_BAD_REQUEST', `${option} ${text}: expected a size like 512M or 4G`);
  return Math.round(Number(match[1]) * SIZE_UNITS_MIB[(match[2] ?? 'm').toLowerCase()]!);
}

/** A positive decimal number, such as a count of CPUs (`2`, `0.5`). */
export function parseDecimal(text: string, option: string, expected: string): number {
  if (!/^\d+(?:\.\d+)?$/.test(text.trim()))
    throw new HangarError('E_BAD_REQUEST', `${option} ${text}: expected ${expected}`);
  return Number(text);
}

export function parseCount(text: string, option: string): number {
  if (!/^\d+$/.test(text)) throw new HangarError('E_BAD_REQUEST', `${option} ${text}: expected a whole number`);
  return Number(text);
}
