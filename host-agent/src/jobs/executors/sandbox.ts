import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants as osConstants, homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HangarError } from '@hangar/shared';
import type { Logger } from 'pino';
import type { Execution, ExecutionRequest, ExecutionResult, Executor } from './types.js';
import { attemptMarks, procStat } from './job-processes.js';
import { bwrapArgs, DEFAULT_PATH } from './sandbox-args.js';
import {
  AGENT_LINK_FD,
  ensureMountpoint,
  launchArgv,
  RESOLV_CONF_FD,
  workdirSource,
  type LaunchPlan,
} from './sandbox-launch.js';
import {
  currentLimitHost,
  describeLimitMethod,
  findCgroupParent,
  prepareLimits,
  type LimitHost,
  type PreparedLimits,
} from './sandbox-limits.js';
import { OutboundNetwork, SANDBOX_RESOLV_CONF, SLIRP_INSTALL_HINT } from './sandbox-network.js';
import { signalSandbox, waitSandboxGone } from './sandbox-processes.js';
import { recoverSandbox, type SandboxCheckpoint } from './sandbox-recovery.js';
import { chownTree, CREATE_JOB_USER, findJobUser, type JobUser } from './sandbox-user.js';
import { explainProbeFailure, type SandboxProblem } from './sandbox-userns.js';

export const SANDBOX_INSTALL_HINT = 'install bubblewrap (apt-get install bubblewrap)';

/** bwrap reads more arguments from this fd (`--args`): secrets go there, never onto a command line. */
const SECRET_ARGS_FD = 4;

export interface SandboxExecutorOptions {
  /** The agent's data dir: never visible to a job, even if it lies under a bound system dir. */
  dataDir: string;
  /** Defaults to `bwrap` from PATH. */
  bwrapPath?: string;
  /** What gives `outbound` jobs their network; defaults to `slirp4netns` from PATH. */
  slirp4netnsPath?: string;
  /** More host paths to hide (other users' homes, caches). The user's $HOME is always hidden. */
  hiddenPaths?: string[];
  /** At most this many sandboxes at once. */
  maxConcurrency?: number;
  /** Override cgroup detection (tests, or a delegated cgroup); null forces the rlimit fallback. */
  cgroupParent?: string | null;
  /** Who jobs run as when the agent is root (default: hangar-job, else nobody); unused otherwise. */
  jobUser?: JobUser;
  /** Where the kernel's switches are read to explain a refusal (tests point it at their own). */
  sysctlDir?: string;
  /** RAM, CPUs and tool paths the limits depend on (tests). */
  limitHost?: LimitHost;
  logger?: Logger;
}

/** How long a passed or failed probe is trusted: the kernel's switches rarely change, but may. */
const PROBE_TTL_MS = 10_000;
const PROBE_TIMEOUT_MS = 10_000;

/**
 * Linux jobs in bubblewrap, with no privilege whatever user runs the agent: an unprivileged user
 * (see sandbox-user.ts) in a user namespace of its own with no capability, no further user
 * namespaces, and limits on processes and memory by default. The attempt's fresh workdir is
 * writable at /work, system dirs read-only, new pid/ipc/uts namespaces and a network namespace of
 * its own (`outbound`, the default: with slirp4netns as its way out, sandbox-network.ts; `none`:
 * loopback only; `host` shares the host's), its own /tmp, /proc and minimal /dev. Nothing of the host's $HOME, the agent's data
 * dir or other attempts' dirs is bound, so a job cannot name them, let alone read them. Where the
 * kernel refuses an unprivileged user namespace, it refuses to run jobs at all.
 */
export class SandboxExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly maxConcurrency: number;
  readonly limitNote: string;
  /** The host user jobs run as; undefined when the agent is not root (they run as the agent's user). */
  readonly jobUser: JobUser | undefined;
  private readonly agentIsRoot: boolean;
  private readonly bwrap: string | undefined;
  private readonly slirp4netns: string | undefined;
  private readonly hidden: string[];
  private readonly cgroupParent: string | undefined;
  private readonly limitHost: LimitHost;
  private readonly running = new Set<SandboxExecution>();
  private probed: { at: number; result: Promise<SandboxProblem | undefined> } | undefined;
  private probes = 0;

  constructor(private readonly options: SandboxExecutorOptions) {
    this.bwrap = findExecutable(options.bwrapPath ?? 'bwrap');
    this.slirp4netns = findExecutable(options.slirp4netnsPath ?? 'slirp4netns');
    this.maxConcurrency = options.maxConcurrency ?? 4;
    this.hidden = [options.dataDir, homedir(), ...(options.hiddenPaths ?? [])].map((path) => resolve(path));
    this.cgroupParent = options.cgroupParent === null ? undefined : (options.cgroupParent ?? findCgroupParentSafely());
    this.limitNote = describeLimitMethod(this.cgroupParent);
    this.limitHost = options.limitHost ?? currentLimitHost();
    this.agentIsRoot = process.getuid?.() === 0;
    this.jobUser = this.agentIsRoot ? (options.jobUser ?? findJobUserSafely()) : undefined;
  }

  async unavailableReason(): Promise<string | undefined> {
    const problem = await this.check();
    return problem && `${problem.problem}: ${problem.fix}`;
  }

  /**
   * Why jobs with the default (`outbound`) network cannot run here, if they cannot. They then fail
   * with this, never run with the host's network instead; `--network none` still runs.
   */
  outboundProblem(): SandboxProblem | undefined {
    if (this.slirp4netns) return undefined;
    return {
      problem: 'slirp4netns is not installed: jobs with the default (outbound) network cannot run',
      fix: SLIRP_INSTALL_HINT,
    };
  }

  /**
   * Whether a sandbox can be made here: by making one, exactly as a job's is made (launcher, job
   * user, bwrap, limits), to run `true`. Finding bwrap proves little: user namespaces may be
   * forbidden (sysctl, AppArmor), and then nothing runs rather than something unconfined.
   */
  check(): Promise<SandboxProblem | undefined> {
    if (this.probed && Date.now() - this.probed.at < PROBE_TTL_MS) return this.probed.result;
    const result = this.probe();
    this.probed = { at: Date.now(), result };
    return result;
  }

  private async probe(): Promise<SandboxProblem | undefined> {
    if (process.platform !== 'linux') {
      return {
        problem: `the sandbox executor needs Linux (this host runs ${process.platform})`,
        fix: 'use --executor shell (no isolation), or tart on a Mac',
      };
    }
    if (!this.bwrap) return { problem: 'bubblewrap (bwrap) is not installed', fix: SANDBOX_INSTALL_HINT };
    if (this.agentIsRoot && !this.jobUser) {
      return {
        problem: 'the agent runs as root and there is no unprivileged user to run jobs as',
        fix: CREATE_JOB_USER,
      };
    }
    const mountpoint = this.jobUser ? ensureMountpoint() : undefined;
    if (mountpoint) return { problem: mountpoint, fix: `remove it; the agent makes it again` };
    const workdir = await mkdtemp(join(tmpdir(), 'hangar-sandbox-probe-'));
    let limits: PreparedLimits | undefined;
    try {
      limits = prepareLimits({}, this.cgroupParent, `probe-${process.pid}-${++this.probes}`, this.limitHost);
      if (this.jobUser) await chownTree(workdir, this.jobUser);
      // `none`: whether bwrap works here does not depend on slirp4netns (outboundProblem says that).
      const request = { workdir, network: 'none' as const, env: {}, command: 'true' };
      const plan = this.plan(workdir, limits.cgroupDir, 'none');
      const argv = launchArgv(plan, this.sandboxArgs(request, limits.inner));
      const { status, output } = await runBounded(argv, PROBE_TIMEOUT_MS);
      return status === 0 ? undefined : explainProbeFailure(output, this.options.sysctlDir);
    } finally {
      limits?.cleanup();
      await rm(workdir, { recursive: true, force: true });
    }
  }

  /**
   * The bwrap argv for an attempt (after the launcher), `inner` being the limits' wrapper of the
   * job's shell; exported for tests.
   */
  sandboxArgs(
    request: Pick<ExecutionRequest, 'workdir' | 'network' | 'env' | 'command'> &
      Partial<Pick<ExecutionRequest, 'secretEnv'>>,
    inner: string[] = [],
  ): string[] {
    const source = workdirSource({ user: this.jobUser, workdir: request.workdir });
    const secrets = Object.keys(request.secretEnv ?? {}).length > 0 ? { secretArgsFd: SECRET_ARGS_FD } : {};
    const network = sandboxNetwork(request.network);
    return bwrapArgs({
      ...request,
      network,
      ...(network === 'outbound' ? { resolvConfFd: RESOLV_CONF_FD, jobIds: this.jobIds() } : {}),
      workdirSource: source,
      hidden: this.hidden,
      inner,
      agentLinkFd: AGENT_LINK_FD,
      ...secrets,
    });
  }

  /** The host uid and gid jobs run as: the job user's, or the agent's own. */
  private jobIds(): { uid: number; gid: number } {
    return this.jobUser ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }

  async start(request: ExecutionRequest): Promise<Execution> {
    const problem = await this.check();
    if (problem) throw new HangarError('E_EXECUTOR_UNAVAILABLE', `${problem.problem}: ${problem.fix}`);
    const network = sandboxNetwork(request.network);
    const noWayOut = network === 'outbound' ? this.outboundProblem() : undefined;
    if (noWayOut) throw new HangarError('E_EXECUTOR_UNAVAILABLE', `${noWayOut.problem}: ${noWayOut.fix}`);
    // The job user owns its workdir, so the job can write /work and nothing else of the host.
    if (this.jobUser) await chownTree(request.workdir, this.jobUser);
    const attemptKey = `${request.jobId}-${request.attempt}`;
    const limits = prepareLimits(request.limits, this.cgroupParent, attemptKey, this.limitHost);
    this.options.logger?.info(
      { job: request.jobId, attempt: request.attempt, method: limits.method, user: this.jobUser?.name },
      limits.note,
    );
    // The attempt's marks, in the launcher's environment (so bwrap's, its forks' and the watcher's)
    // and the job's: what a restarted agent finds its leftovers by (sandbox-recovery.ts).
    const marks = attemptMarks({ id: request.jobId, attempt: request.attempt });
    const bwrapArgs = [
      '--info-fd',
      '3',
      ...this.sandboxArgs({ ...request, env: { ...request.env, ...marks } }, limits.inner),
    ];
    const argv = launchArgv(this.plan(request.workdir, limits.cgroupDir, network), bwrapArgs);
    const started = Date.now();
    // detached: the launcher, which execs into bwrap, leads its own process group, so a signal to
    // -pgid never reaches the agent. The log file is stdout and stderr: the job's output and the
    // launcher's and bwrap's own errors (a bad bind) land there.
    const { fd } = request.output;
    // Secrets as NUL-separated `--setenv NAME VALUE` on fd 4 (--args above), read by bwrap before the
    // sandbox starts; the launcher (unshare, setpriv) passes the fd on to it.
    const secretArgs = Object.entries(request.secretEnv ?? {}).flatMap(([key, value]) => ['--setenv', key, value]);
    // 6 and 7, outbound only: the network handshake with the launcher and the sandbox's resolv.conf.
    const outbound = network === 'outbound' ? 'pipe' : 'ignore';
    const secretsPipe = secretArgs.length > 0 ? 'pipe' : 'ignore';
    const stdio: StdioOptions = ['ignore', fd, fd, 'pipe', secretsPipe, 'pipe', outbound, outbound];
    // The launcher's environment: the PATH it finds its tools on, and the marks. Nothing else of the
    // agent's, which the job could read in /proc/1/environ (the sandbox's init is a fork of bwrap,
    // which keeps the environment it was started with).
    const env = { PATH: process.env['PATH'] ?? DEFAULT_PATH, ...marks };
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio, env });
    holdAgentLink(child);
    const outboundNetwork =
      network === 'outbound'
        ? new OutboundNetwork({
            launcher: child,
            slirp4netns: this.slirp4netns!,
            user: this.jobUser,
            env,
            logger: this.options.logger,
            jobId: request.jobId,
            note: (text) => request.output.write(Buffer.from(text)),
            cgroupDir: limits.cgroupDir,
          })
        : undefined;
    if (outboundNetwork) {
      const resolvConf = (child.stdio as readonly unknown[])[RESOLV_CONF_FD] as NodeJS.WritableStream;
      resolvConf.on('error', (error) =>
        this.options.logger?.warn({ err: error, job: request.jobId }, 'could not pass the sandbox its resolv.conf'),
      );
      resolvConf.end(SANDBOX_RESOLV_CONF);
    }
    if (secretArgs.length > 0) {
      const secrets = child.stdio[SECRET_ARGS_FD] as NodeJS.WritableStream;
      secrets.on('error', (error) =>
        this.options.logger?.warn({ err: error, job: request.jobId }, 'could not pass the job its secrets'),
      );
      secrets.end(secretArgs.map((arg) => `${arg}\0`).join(''));
    }
    const execution = new SandboxExecution(child.pid!, limits.cleanup, {
      jobId: request.jobId,
      attempt: request.attempt,
      uid: this.jobUser?.uid ?? process.getuid?.(),
      cgroupDir: limits.cgroupDir,
    });
    this.running.add(execution);
    const info = child.stdio[3] as NodeJS.ReadableStream;
    let infoText = '';
    info.on('data', (chunk: Buffer) => {
      infoText += chunk.toString('utf8');
      const match = /"pid-namespace":\s*(\d+)/.exec(infoText);
      if (match && execution.namespace === undefined) {
        execution.namespace = Number(match[1]);
        request.checkpoint(execution.checkpointState());
      }
    });
    request.checkpoint(execution.checkpointState());
    execution.done = new Promise<ExecutionResult>((resolveDone, rejectDone) => {
      child.on('error', rejectDone);
      child.on('close', (code, signal) => {
        request.timing('run', Date.now() - started);
        // The attempt ends with its network: slirp4netns gone too (its exit fd closed at the launcher's
        // exit). That takes 15-25 ms, SIGKILL or not: the kernel takes its tap device down.
        void (outboundNetwork?.ended ?? Promise.resolve()).then(() => {
          this.running.delete(execution);
          execution.finish();
          resolveDone(execution.result(code, signal));
        });
      });
    });
    return execution;
  }

  /**
   * Ends what a lost attempt left: bwrap while it lives, and whatever carries the attempt's marks
   * (its sandbox's init reparented to the host's init, with the job inside), its cgroup's
   * processes; never a stranger holding its old pid, group or namespace (sandbox-recovery.ts).
   * A root agent may signal the job user's processes; a user's agent, its own.
   */
  async recover(state: Record<string, unknown>): Promise<void> {
    await recoverSandbox(state);
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.running].map((execution) => execution.cancel(0)));
  }

  private plan(workdir: string, cgroupDir: string | undefined, network: LaunchPlan['network']): LaunchPlan {
    return { user: this.jobUser, workdir, cgroupDir, bwrap: this.bwrap ?? 'bwrap', agentPid: process.pid, network };
  }
}

class SandboxExecution implements Execution {
  done!: Promise<ExecutionResult>;
  namespace: number | undefined;
  private readonly startTime: number | undefined;
  private cancelled = false;
  private finished = false;

  constructor(
    readonly pid: number,
    private readonly cleanup: () => void,
    /** What recovery tells the attempt's processes by (sandbox-recovery.ts). */
    private readonly identity: Pick<SandboxCheckpoint, 'jobId' | 'attempt' | 'uid' | 'cgroupDir'>,
  ) {
    this.startTime = procStat(pid)?.startTime;
  }

  checkpointState(): Record<string, unknown> {
    const state: SandboxCheckpoint & { pgid: number } = {
      pid: this.pid,
      pgid: this.pid,
      startTime: this.startTime,
      pidNamespace: this.namespace,
      ...this.identity,
    };
    return state;
  }

  finish(): void {
    this.finished = true;
    this.cleanup();
  }

  result(code: number | null, signal: NodeJS.Signals | null): ExecutionResult {
    // bwrap reports a job killed by a signal as 128+n; after a cancel that is the signal we sent.
    if (this.cancelled && code !== null && code > 128 && code < 128 + 65) {
      return { exitCode: null, signal: signalName(code - 128) };
    }
    return { exitCode: code, signal };
  }

  async cancel(graceMs: number): Promise<void> {
    if (this.finished) return;
    this.cancelled = true;
    // TERM reaches every process inside (not only bwrap, whose child ignores host signals as pid 1).
    signalSandbox(this.pid, this.namespace, 'SIGTERM');
    if (!(await waitSandboxGone(this.pid, this.namespace, graceMs))) {
      // KILL bwrap too: --die-with-parent then takes the sandbox's pid 1 and, with it, the namespace.
      signalSandbox(this.pid, this.namespace, 'SIGKILL');
      await waitSandboxGone(this.pid, this.namespace, 5_000);
    }
    await this.done.catch(() => undefined);
  }
}

/** The sandbox's network for a job's: `default` is `outbound`. */
function sandboxNetwork(network: ExecutionRequest['network']): LaunchPlan['network'] {
  return network === 'default' ? 'outbound' : network;
}

function signalName(number: number): string | null {
  const entry = Object.entries(osConstants.signals).find(([, value]) => value === number);
  return entry ? entry[0] : null;
}

function findCgroupParentSafely(): string | undefined {
  return process.platform === 'linux' ? findCgroupParent() : undefined;
}

function findJobUserSafely(): JobUser | undefined {
  return existsSync('/etc/passwd') ? findJobUser() : undefined;
}

/**
 * An absolute path to the program (a name is looked up on the agent's PATH), or undefined: the
 * launcher execs it after changing user, so it is named once, here, where the agent can check it.
 */
function findExecutable(program: string): string | undefined {
  const candidates = program.includes('/')
    ? [resolve(program)]
    : (process.env['PATH'] ?? DEFAULT_PATH).split(':').map((dir) => join(dir || '.', program));
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return statSync(path).isFile();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') return false;
      throw error;
    }
  });
}

/**
 * The agent's end of the link its watchers read (sandbox-launch.ts, sandbox-args.ts): held, never
 * written, until the launcher has exited, then closed so the watchers end too. Its EOF reaches
 * them earlier only if the agent dies.
 */
function holdAgentLink(child: ChildProcess): void {
  const link = (child.stdio as readonly unknown[])[AGENT_LINK_FD] as
    (NodeJS.ReadableStream & { destroy(): void }) | null;
  if (!link) return;
  link.on('error', () => undefined);
  child.once('exit', () => link.destroy());
}

/** Runs argv to its end (killed past the timeout) and gives its status and what it printed. */
function runBounded(argv: string[], timeoutMs: number): Promise<{ status: number | null; output: string }> {
  return new Promise((resolveRun) => {
    // The agent link (AGENT_LINK_FD) is there too, as for a job: the sandbox runs its watcher.
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'pipe'];
    const child = spawn(argv[0]!, argv.slice(1), { stdio, timeout: timeoutMs });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    holdAgentLink(child);
    child.on('error', (error) => resolveRun({ status: null, output: `${output}${error.message}` }));
    child.on('close', (status, signal) => {
      resolveRun({ status, output: signal ? `${output}killed by ${signal} after ${timeoutMs} ms` : output });
    });
  });
}
