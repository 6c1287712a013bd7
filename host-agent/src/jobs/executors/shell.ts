import { spawn } from 'node:child_process';
import { z } from 'zod';
import { killRecoveredGroup, processStartTime, signalGroup, terminateGroup, waitGroupGone } from './process-group.js';
import type { Execution, ExecutionRequest, ExecutionResult, Executor } from './types.js';

/** What a shell attempt checkpoints: enough to find its process group again, and to know it is ours. */
const ShellCheckpoint = z.object({ pgid: z.number().int().positive(), started: z.string() });

/** Grace given to a crashed agent's leftovers: nobody is waiting for their output any more. */
const RECOVER_GRACE_MS = 2000;

/**
 * `shell`: the command in a plain process group in the workdir, no isolation (trusted use).
 * stdout and stderr are both the attempt's log file (one open file, appending), so the output
 * keeps the order it was written in and never passes through the agent. A process that leaves
 * the group with setsid keeps that file open, but the log's length is fixed when the attempt
 * ends: what it writes later is not part of the log.
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
        HANGAR_JOB_ID: request.jobId,
        HANGAR_ATTEMPT: String(request.attempt),
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
    const started = await processStartTime(pgid);
    if (started !== undefined) request.checkpoint({ pgid, started });

    let cancelling: Promise<void> | undefined;
    const done = exited.then(async (result) => {
      // A cancel in progress gives the rest of the group its grace; otherwise the job is over when
      // its shell is, and background processes it left would be orphans.
      if (cancelling) await cancelling;
      else signalGroup(pgid, 'SIGKILL');
      await waitGroupGone(pgid, 5000);
      request.timing('run', Date.now() - startedAt);
      return result;
    });

    return {
      done,
      cancel: async (graceMs) => {
        cancelling ??= terminateGroup(pgid, graceMs);
        await cancelling;
        await done;
      },
    };
  }

  async recover(state: Record<string, unknown>): Promise<void> {
    const parsed = ShellCheckpoint.safeParse(state);
    if (!parsed.success) return;
    await killRecoveredGroup(parsed.data.pgid, parsed.data.started, RECOVER_GRACE_MS);
  }

  dispose(): void {}
}
