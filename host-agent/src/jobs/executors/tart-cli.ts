import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { HangarError } from '@hangar/shared';
import { z } from 'zod';

export const TART_INSTALL_HINT = 'install Tart: brew install cirruslabs/cli/tart';

/** Inside a macOS guest, `--dir=NAME:path` shares (default tag) are automounted here, one folder per NAME. */
export const GUEST_SHARE_ROOT = '/Volumes/My Shared Files';

/** `tart list --format json` rows (Sources/tart/Commands/List.swift `VMInfo`). */
const vmInfoSchema = z.object({
  Source: z.string(),
  Name: z.string(),
  Running: z.boolean(),
  State: z.string(),
});
export type TartVm = z.infer<typeof vmInfoSchema>;

export interface TartCliOptions {
  /** Defaults to `tart` from PATH. */
  binary?: string;
  env?: NodeJS.ProcessEnv;
  /** How long `tart stop` may run past its own `--timeout` before it is cut off (default STOP_GRACE_MS; tests shorten it). */
  stopGraceMs?: number;
}

export interface TartExecResult {
  exitCode: number;
}

export interface TartRunProcess {
  pid: number;
  /** Resolves when this `tart run` process has exited (the VM is then off). */
  exited: Promise<void>;
  /** SIGKILL to this `tart run`, as `tart stop` does after its timeout (Stop.swift): the VM goes with it. */
  kill(): void;
}

/**
 * How long `tart stop` may take beyond its own `--timeout` (it SIGINTs the VM's `tart run`, then
 * SIGKILLs it at the timeout, so it is done soon after). Past that the call is cut off (E_TIMEOUT)
 * and the pool kills its `tart run` itself.
 */
export const STOP_GRACE_MS = 5_000;

/** Upper bound for commands that answer at once (list, set, stop's own timeout comes on top). */
const QUICK_TIMEOUT_MS = 60_000;
/** Clone may pull an image from a registry first: minutes, not hours. */
const CLONE_TIMEOUT_MS = 30 * 60_000;

/**
 * The Tart CLI, one method per command we use, argv arrays only (never a shell). Flags follow
 * Tart's own ArgumentParser definitions (Sources/tart/Commands/*.swift).
 */
export class TartCli {
  readonly binary: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly stopGraceMs: number;

  constructor(options: TartCliOptions = {}) {
    this.binary = options.binary ?? 'tart';
    this.env = options.env ?? process.env;
    this.stopGraceMs = options.stopGraceMs ?? STOP_GRACE_MS;
  }

  async version(): Promise<string> {
    return (await this.invoke(['--version'])).trim();
  }

  async list(): Promise<TartVm[]> {
    const out = await this.invoke(['list', '--source', 'local', '--format', 'json']);
    return z.array(vmInfoSchema).parse(JSON.parse(out));
  }

  /** Replaces `name` silently if it exists (VMStorageLocal `move` uses replaceItemAt): callers pick unique names. */
  async clone(source: string, name: string): Promise<void> {
    await this.invoke(['clone', source, name], CLONE_TIMEOUT_MS);
  }

  async set(name: string, settings: { cpu?: number; memoryMb?: number }): Promise<void> {
    const args = ['set', name];
    if (settings.cpu !== undefined) args.push('--cpu', String(settings.cpu));
    if (settings.memoryMb !== undefined) args.push('--memory', String(settings.memoryMb));
    if (args.length > 2) await this.invoke(args);
  }

  /**
   * `tart run` blocks until the VM exits, so it runs detached in its own session (launchd kills a
   * service's process group on exit, and the VM must outlive an agent restart to be adopted), with
   * its output in a file rather than a pipe to us that would die with the agent.
   */
  run(name: string, options: { shares: Record<string, string>; logFile: string }): TartRunProcess {
    const args = ['run', '--no-graphics', '--no-audio', '--no-clipboard'];
    for (const [share, path] of Object.entries(options.shares)) args.push(`--dir=${share}:${path}`);
    args.push(name);
    const log = openSync(options.logFile, 'a');
    try {
      const child = spawn(this.binary, args, { detached: true, stdio: ['ignore', log, log], env: this.env });
      const exited = new Promise<void>((resolve, reject) => {
        child.once('error', (error) => reject(notInstalled(error) ?? error));
        child.once('exit', () => resolve());
      });
      child.unref();
      return { pid: child.pid ?? -1, exited, kill: () => void child.kill('SIGKILL') };
    } finally {
      closeSync(log);
    }
  }

  async ip(name: string, waitSeconds: number): Promise<string> {
    const out = await this.invoke(['ip', name, '--wait', String(waitSeconds)], (waitSeconds + 10) * 1000);
    return out.trim();
  }

  /**
   * `tart exec` through the guest agent: no env, cwd or signals, and stdout/stderr are separate
   * streams whose relative order is lost, so callers run a wrapper that merges them in the guest.
   * Without the agent in the guest it waits ~30 s (gRPC's connection wait) and fails with "is the
   * Tart Guest Agent running?" (Exec.swift); tart-guest.ts probes it with a shorter timeout.
   */
  exec(
    name: string,
    command: string[],
    onOutput?: (chunk: Buffer) => void,
  ): { done: Promise<TartExecResult>; kill(): void } {
    const child = spawn(this.binary, ['exec', name, ...command], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    child.stdout!.on('data', (chunk: Buffer) => onOutput?.(chunk));
    child.stderr!.on('data', (chunk: Buffer) => onOutput?.(chunk));
    const done = new Promise<TartExecResult>((resolve, reject) => {
      child.once('error', (error) => reject(notInstalled(error) ?? error));
      child.once('close', (code, signal) => resolve({ exitCode: code ?? (signal ? 128 : 1) }));
    });
    return { done, kill: () => child.kill('SIGKILL') };
  }

  /**
   * SIGINT to `tart run`, SIGKILL after `timeoutSeconds` (Stop.swift). A stopped or missing VM is not
   * an error here. A `tart stop` still going `stopGraceMs` after its timeout is killed: E_TIMEOUT.
   */
  async stop(name: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.invoke(
        ['stop', name, '--timeout', String(timeoutSeconds)],
        timeoutSeconds * 1000 + this.stopGraceMs,
        'SIGKILL',
      );
    } catch (error) {
      if (!/is not running|does not exist/.test((error as Error).message)) throw error;
    }
  }

  /** A missing VM is not an error here: deleting is how we make sure it is gone. */
  async delete(name: string): Promise<void> {
    try {
      await this.invoke(['delete', name]);
    } catch (error) {
      if (!/does not exist/.test((error as Error).message)) throw error;
    }
  }

  private invoke(
    args: string[],
    timeoutMs = QUICK_TIMEOUT_MS,
    killSignal: NodeJS.Signals = 'SIGTERM',
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        this.binary,
        args,
        { env: this.env, timeout: timeoutMs, killSignal, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (!error) return resolve(stdout);
          const missing = notInstalled(error);
          if (missing) return reject(missing);
          if (error.killed) {
            const what = `tart ${args[0]} did not finish within ${timeoutMs / 1000} s and was killed`;
            return reject(new HangarError('E_TIMEOUT', what, { args }));
          }
          const detail = stderr.trim() || error.message;
          reject(new HangarError('E_INTERNAL', `tart ${args[0]} failed: ${detail}`, { args }));
        },
      );
    });
  }
}

function notInstalled(error: unknown): HangarError | undefined {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
  return new HangarError('E_EXECUTOR_UNAVAILABLE', `tart is not installed: ${TART_INSTALL_HINT}`);
}
