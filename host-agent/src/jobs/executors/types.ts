import type { Disposable } from '@hangar/shared';

/** Phases an attempt's time is split into (shown by `hangar jobs show`). */
export type TimingPhase = 'clone' | 'boot' | 'ready' | 'run' | 'collect' | 'delete';

/** Where an executor puts a job's output: stdout and stderr merged, in the order written. */
export interface JobOutput {
  /**
   * Open for appending on the attempt's log. Executors that run the job as a local child hand it
   * this as stdout and stderr: the bytes go from the job to the file without passing through the
   * agent, so a flood costs the agent nothing and nothing is lost if the agent dies.
   */
  readonly fd: number;
  /** Appends bytes that do pass through the agent (a VM's output, the agent's own notes). */
  write(chunk: Uint8Array): void;
}

export interface ExecutionRequest {
  jobId: string;
  attempt: number;
  /** Run with `sh -c` in the workdir. */
  command: string;
  env: Record<string, string>;
  /**
   * Environment whose values are secrets: into the job's environment like `env`, but never onto
   * a command line (other users of the host can read those in /proc) nor into a log.
   */
  secretEnv?: Record<string, string>;
  /** Host path of this attempt's fresh working directory (the unpacked workspace). */
  workdir: string;
  /** `default` means `outbound`; see JobNetwork in shared. */
  network: 'default' | 'outbound' | 'none' | 'host';
  limits: { cpus?: number; memoryMb?: number; pids?: number };
  /** Tart: base image to clone. */
  image?: string;
  output: JobOutput;
  /** Reports how long a phase took, as it happens. */
  timing(phase: TimingPhase, ms: number): void;
  /** Persisted with the attempt so that a restarted agent can clean up (see Executor.recover). */
  checkpoint(state: Record<string, unknown>): void;
}

export interface ExecutionResult {
  /** null when killed by a signal. */
  exitCode: number | null;
  signal: string | null;
}

export interface Execution {
  readonly done: Promise<ExecutionResult>;
  /** SIGTERM to every process of the attempt (or the VM's command), SIGKILL after graceMs. Resolves when nothing is left. */
  cancel(graceMs: number): Promise<void>;
}

export interface Executor extends Disposable {
  readonly name: 'shell' | 'sandbox' | 'tart';
  /** At most this many attempts at once on this executor (tart: 2, Apple's limit on macOS VMs). */
  readonly maxConcurrency: number;
  /** Why it cannot run here, with what to install; undefined when it can. */
  unavailableReason(): Promise<string | undefined>;
  start(request: ExecutionRequest): Promise<Execution>;
  /**
   * After an agent crash: kill whatever the attempt left (a process group, a VM), from the state
   * it checkpointed. Must be safe to call for something that is already gone.
   */
  recover(state: Record<string, unknown>): Promise<void>;
}
