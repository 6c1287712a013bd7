import { HangarError, toHangarError, type ArtifactInfo, type AttemptTimings } from '@hangar/shared';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { collectArtifacts } from './artifacts.js';
import type { AttemptLog } from './attempt-log.js';
import type { Execution, Executor, TimingPhase } from './executors/types.js';
import type { JobRecord } from './job-store.js';
import { unpackWorkspace } from './unpack.js';

/** Why an attempt was stopped from outside, and so which final state it gets. */
export type StopReason = 'cancelled' | 'timed_out' | 'requeue';

export interface AttemptOutcome {
  state: 'succeeded' | 'failed' | 'cancelled' | 'timed_out' | 'requeued';
  exitCode: number | null;
  error: string | null;
  /** False for failures that would repeat identically (an unsafe workspace or artifact). */
  retryable: boolean;
  artifacts: ArtifactInfo[];
}

export interface AttemptSetup {
  job: JobRecord;
  number: number;
  executor: Executor;
  workdir: string;
  artifactsDir: string;
  /** The workspace tarball to unpack, when the job has one. */
  workspace: string | undefined;
  log: AttemptLog;
  /** The job's secrets in the clear (opened only here, as the command starts); throws if they cannot be. */
  secretEnv(): Record<string, string>;
  killGraceMs: number;
  timing(phase: keyof AttemptTimings, ms: number): void;
  checkpoint(state: Record<string, unknown>): void;
  /** The command has started (the job moves from preparing to running). */
  onRunning(): void;
}

/**
 * One attempt of a job, from a fresh workdir to collected artifacts. Stopping it (cancel,
 * timeout, agent shutdown) is SIGTERM then SIGKILL after the grace, through the executor.
 */
export class RunningAttempt {
  private stopReason: StopReason | undefined;
  private execution: Execution | undefined;
  private stopping: Promise<void> | undefined;
  readonly finished: Promise<AttemptOutcome>;

  constructor(private readonly setup: AttemptSetup) {
    this.finished = this.run();
  }

  get number(): number {
    return this.setup.number;
  }

  /** Stops the attempt (first reason wins) and resolves once it has ended. */
  async stop(reason: StopReason, graceMs = this.setup.killGraceMs): Promise<AttemptOutcome> {
    this.stopReason ??= reason;
    if (this.execution) this.stopping ??= this.execution.cancel(graceMs);
    return this.finished;
  }

  private note(message: string): void {
    this.setup.log.write(Buffer.from(`\n[hangar] ${message}\n`));
  }

  private async run(): Promise<AttemptOutcome> {
    const { job, executor, workdir } = this.setup;
    const fail = (error: HangarError, retryable: boolean, exitCode: number | null = null): AttemptOutcome => {
      this.note(error.message);
      return { state: 'failed', exitCode, error: error.message, retryable, artifacts: [] };
    };
    await mkdir(workdir, { recursive: true, mode: 0o700 });
    if (this.setup.workspace !== undefined) {
      if (!existsSync(this.setup.workspace)) {
        return fail(
          new HangarError(
            'E_WORKSPACE_MISSING',
            `workspace ${job.spec.workspace} is no longer on this host; submit again`,
          ),
          false,
        );
      }
      try {
        await unpackWorkspace(this.setup.workspace, workdir);
      } catch (error) {
        const failure = toHangarError(error);
        return fail(failure, failure.code !== 'E_WORKSPACE_UNSAFE');
      }
    }
    if (this.stopReason) return this.stoppedOutcome(null);

    let secretEnv: Record<string, string>;
    try {
      secretEnv = this.setup.secretEnv();
    } catch (error) {
      return fail(toHangarError(error), false);
    }
    try {
      this.execution = await executor.start({
        jobId: job.id,
        attempt: this.setup.number,
        command: job.spec.command,
        env: job.spec.env,
        secretEnv,
        workdir,
        network: job.spec.network,
        limits: {
          ...(job.spec.limits.cpus !== undefined ? { cpus: job.spec.limits.cpus } : {}),
          ...(job.spec.limits.memory_mb !== undefined ? { memoryMb: job.spec.limits.memory_mb } : {}),
          ...(job.spec.limits.pids !== undefined ? { pids: job.spec.limits.pids } : {}),
        },
        ...(job.spec.image !== undefined ? { image: job.spec.image } : {}),
        output: this.setup.log,
        timing: (phase: TimingPhase, ms) => this.setup.timing(phase, ms),
        checkpoint: (state) => this.setup.checkpoint(state),
      });
    } catch (error) {
      const failure = toHangarError(error);
      return fail(
        new HangarError(failure.code, `the ${executor.name} executor could not start: ${failure.message}`),
        true,
      );
    }
    if (this.stopReason) this.stopping ??= this.execution.cancel(this.setup.killGraceMs);
    else this.setup.onRunning();

    const timer = setTimeout(() => void this.stop('timed_out'), job.spec.timeout_ms);
    let result: Awaited<Execution['done']>;
    try {
      result = await this.execution.done.finally(() => clearTimeout(timer));
    } catch (error) {
      // What the job left where the host takes its results is unsafe (a link out of a VM's share):
      // the job's doing, not the agent's, and it would do the same again.
      if (error instanceof HangarError && error.code === 'E_ARTIFACT_UNSAFE') return fail(error, false);
      throw error;
    }
    await this.stopping;
    if (this.stopReason) return this.stoppedOutcome(result.exitCode);

    const exitCode = result.exitCode;
    const failed = exitCode !== 0;
    const collectStart = Date.now();
    let artifacts: ArtifactInfo[] = [];
    try {
      artifacts = await collectArtifacts(workdir, job.spec.artifacts, this.setup.artifactsDir);
    } catch (error) {
      const failure = toHangarError(error);
      return fail(failure, failure.code !== 'E_ARTIFACT_UNSAFE', exitCode);
    } finally {
      if (job.spec.artifacts.length > 0) this.setup.timing('collect', Date.now() - collectStart);
    }
    const error = failed
      ? exitCode === null
        ? `the command was killed by ${result.signal ?? 'a signal'}`
        : `the command exited with ${exitCode}`
      : null;
    return { state: failed ? 'failed' : 'succeeded', exitCode, error, retryable: true, artifacts };
  }

  private stoppedOutcome(exitCode: number | null): AttemptOutcome {
    const base = { exitCode, retryable: false, artifacts: [] };
    switch (this.stopReason!) {
      case 'cancelled':
        this.note('cancelled');
        return { ...base, state: 'cancelled', error: 'cancelled' };
      case 'timed_out': {
        const message = `timed out after ${formatDuration(this.setup.job.spec.timeout_ms)}`;
        this.note(message);
        return { ...base, state: 'timed_out', error: message };
      }
      case 'requeue':
        this.note('the agent is shutting down; the job goes back to the queue');
        return { ...base, state: 'requeued', error: 'the agent shut down during this attempt; the job was requeued' };
    }
  }
}

function formatDuration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}
