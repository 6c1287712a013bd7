import { spawn } from 'node:child_process';
import { z } from 'zod';
import { attemptMarks, killJob, processStartTime, terminateJob, type JobProcessMarks } from './job-processes.js';
import type { Execution, ExecutionRequest, ExecutionResult, Executor } from './types.js';

/**
 * What a shell attempt checkpoints: enough to find its process group again and to know it is ours,
 * and the marks its processes carry (absent from checkpoints written before they were recorded).
 */
const ShellCheckpoint = z.object({
  pgid: z.number().int().positive(),
  started: z.string(),
  jobId: z.string().optional(),
  attempt: z.number().int().positive().optional(),
});

/** Grace given to a crashed agent's leftovers: nobody is waiting for their output any more. */
const RECOVER_GRACE_MS = 2000;

/** Linux: a start time from processStartTime as the clock ticks JobProcessMarks.since takes. */
function startTicks(started: string | undefined): number | undefined {
  return process.platform === 'linux' && started !== undefined && /^\d+$/.test(started) ? Number(started) : undefined;
}

/**
 * `shell`: the command in a plain process group in the workdir, no isolation (trusted use).
 * stdout and stderr are both the attempt's log file (one open file, appending), so the output
 * keeps the order it was written in and never passes through the agent. Cancel, timeout and the
 * attempt's end reach every process of it, including those that left the group (setsid, a
 * daemon's double fork): see job-processes.ts for how they are found, and how one opts out. One
 * that opted out keeps the log file open, but the log's length is fixed when the attempt ends:
 * what it writes later is not part of the log.
 */
export class ShellExecutor implements Executor {
  readonly name = 'shell' as const;

  constructor(readonly maxConcurrency = Number.POSITIVE_INFINITY) {}

  async unavailableReason(): Promise<string | undefined> {
    return undefined;
  }

  async start(request: ExecutionRequest): Promise<Execution> {
    const child = spawn('/bin/sh', ['-c', request.command], {
      cwd: request.workdir,
      env: {
        ...process.env,
        ...request.env,
        ...request.secretEnv,
        ...attemptMarks({ id: request.jobId, attempt: request.attempt }),
      },
      detached: true,
      stdio: ['ignore', request.output.fd, request.output.fd],
    });
    // Listen before the first await: a quick command may exit before start() resumes.
    const exited = new Promise<ExecutionResult>((resolve) => {
      child.once('exit', (code, signal) => resolve({ exitCode: code, signal }));
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const pgid = child.pid!;
    const startedAt = Date.now();
    // Read before the loop turns again: the shell is not reaped before then, even if it exited.
    const started = await processStartTime(pgid);
    const marks: JobProcessMarks = {
      pgid,
      job: { id: request.jobId, attempt: request.attempt },
      since: startTicks(started),
    };
    if (started !== undefined) request.checkpoint({ pgid, started, jobId: request.jobId, attempt: request.attempt });

    let cancelling: Promise<void> | undefined;
    const done = exited.then(async (result) => {
      // A cancel in progress gives the rest of the job its grace; otherwise the job is over when
      // its shell is, and background processes it left would be orphans.
      if (cancelling) await cancelling;
      await killJob(marks, 5000);
      request.timing('run', Date.now() - startedAt);
      return result;
    });

    return {
      done,
      cancel: async (graceMs) => {
        cancelling ??= terminateJob(marks, graceMs);
        await cancelling;
        await done;
      },
    };
  }

  async recover(state: Record<string, unknown>): Promise<void> {
    const parsed = ShellCheckpoint.safeParse(state);
    if (!parsed.success) return;
    const { pgid, started, jobId, attempt } = parsed.data;
    // The group is ours only while its leader is the shell we started (same pid, same start time).
    // Once the leader is gone its number proves nothing: a group id is handed out again once the
    // group is empty, and a stranger's group may hold it now. What the attempt left is then found
    // by its marks alone, as sandbox recovery does (a checkpoint without marks, written before
    // they were recorded, ends with its leader).
    const groupIsOurs = (await processStartTime(pgid)) === started;
    const job = jobId === undefined || attempt === undefined ? undefined : { id: jobId, attempt };
    // Whatever the attempt left descends from that shell, so started no earlier than it.
    await terminateJob({ pgid: groupIsOurs ? pgid : undefined, job, since: startTicks(started) }, RECOVER_GRACE_MS);
  }

  dispose(): void {}
}
