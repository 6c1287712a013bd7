import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { constants, homedir } from 'node:os';
import { isAbsolute, relative, resolve } from 'node:path';
import { HangarError } from '@hangar/shared';
import type { Logger } from 'pino';
import type { Execution, ExecutionRequest, ExecutionResult, Executor } from './types.js';
import { describeLimitMethod, findCgroupParent, prepareLimits } from './sandbox-limits.js';
import { processStartTime, signalSandbox, waitSandboxGone } from './sandbox-processes.js';

export const SANDBOX_INSTALL_HINT = 'install bubblewrap (apt-get install bubblewrap)';

/** Where the attempt's workdir appears inside the sandbox. */
export const SANDBOX_WORKDIR = '/work';

/** System directories a build needs, bound read-only (or recreated as the same symlink on merged-/usr systems). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/opt'];

/**
 * The parts of /etc a build needs: users and groups (for `id`, `ls -l`), name resolution, TLS roots,
 * the dynamic loader cache, Debian's alternatives symlinks (`awk`, `editor` … point through them).
 * Not the rest: /etc holds host secrets (shadow, ssh keys, credentials of other services).
 */
const ETC_ENTRIES = [
  'passwd',
  'group',
  'hosts',
  'resolv.conf',
  'nsswitch.conf',
  'host.conf',
  'gai.conf',
  'localtime',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'alternatives',
  'ssl',
  'ca-certificates',
  'ca-certificates.conf',
  'profile',
  'mime.types',
];

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** bwrap reads more arguments from this fd (`--args`): secrets go there, never onto its command line. */
const SECRET_ARGS_FD = 4;

export interface SandboxExecutorOptions {
  /** The agent's data dir: never visible to a job, even if it lies under a bound system dir. */
  dataDir: string;
  /** Defaults to `bwrap` from PATH. */
  bwrapPath?: string;
  /** More host paths to hide (other users' homes, caches). The user's $HOME is always hidden. */
  hiddenPaths?: string[];
  /** At most this many sandboxes at once. */
  maxConcurrency?: number;
  /** Override cgroup detection (tests, or a delegated cgroup); null forces the rlimit fallback. */
  cgroupParent?: string | null;
  logger?: Logger;
}

/**
 * Linux jobs in bubblewrap: the attempt's fresh workdir writable at /work, system dirs read-only,
 * new pid/ipc/uts (and, for `network: none`, net) namespaces, its own /tmp, /proc and minimal /dev.
 * Nothing of the host's $HOME, the agent's data dir or other attempts' dirs is bound, so a job
 * cannot name them, let alone read them.
 */
export class SandboxExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly maxConcurrency: number;
  readonly limitNote: string;
  private readonly bwrap: string;
  private readonly hidden: string[];
  private readonly cgroupParent: string | undefined;
  private readonly running = new Set<SandboxExecution>();

  constructor(private readonly options: SandboxExecutorOptions) {
    this.bwrap = options.bwrapPath ?? 'bwrap';
    this.maxConcurrency = options.maxConcurrency ?? 4;
    this.hidden = [options.dataDir, homedir(), ...(options.hiddenPaths ?? [])].map((path) => resolve(path));
    this.cgroupParent = options.cgroupParent === null ? undefined : (options.cgroupParent ?? findCgroupParentSafely());
    this.limitNote = describeLimitMethod(this.cgroupParent);
  }

  async unavailableReason(): Promise<string | undefined> {
    if (process.platform !== 'linux') return `the sandbox executor needs Linux (this host runs ${process.platform})`;
    // Running it once proves more than finding it: user namespaces may be disabled (sysctl, AppArmor).
    const probe = spawnSync(this.bwrap, ['--ro-bind', '/', '/', '--unshare-pid', '--', '/bin/true'], {
      timeout: 10_000,
      encoding: 'utf8',
    });
    if (probe.error) {
      const code = (probe.error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return `bubblewrap (bwrap) is not installed: ${SANDBOX_INSTALL_HINT}`;
      return `bubblewrap could not be started (${probe.error.message}): ${SANDBOX_INSTALL_HINT}`;
    }
    if (probe.status !== 0) {
      return (
        `bubblewrap is installed but cannot create namespaces here (${probe.stderr.trim()}); ` +
        'allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run the agent as root'
      );
    }
    return undefined;
  }

  /** The bwrap argv (after any limit prefix) for an attempt; exported for tests and `doctor`. */
  sandboxArgs(request: Pick<ExecutionRequest, 'workdir' | 'network' | 'env' | 'secretEnv' | 'command'>): string[] {
    const args: string[] = ['--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--unshare-uts'];
    if (request.network === 'none') args.push('--unshare-net');
    args.push('--hostname', 'hangar-sandbox');
    const bound: string[] = [];
    for (const dir of SYSTEM_DIRS) {
      const entry = describePath(dir);
      if (entry === 'symlink') args.push('--symlink', readlinkSync(dir), dir);
      else if (entry === 'dir') {
        args.push('--ro-bind', dir, dir);
        bound.push(realpathSync(dir));
      }
    }
    for (const name of ETC_ENTRIES) args.push('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
    // A hidden path under a bound system dir (a data dir in /opt, a $HOME under /usr/local) gets an
    // empty tmpfs over it, so binding /usr never exposes it.
    for (const path of this.hidden) {
      if (bound.some((dir) => isInside(dir, path)) && existsSync(path)) args.push('--tmpfs', path);
    }
    args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
    args.push('--bind', request.workdir, SANDBOX_WORKDIR, '--chdir', SANDBOX_WORKDIR);
    // The root is a tmpfs bwrap made; read-only, so nothing outside /work and /tmp can be written.
    args.push('--remount-ro', '/');
    args.push('--clearenv');
    const env = { PATH: DEFAULT_PATH, HOME: SANDBOX_WORKDIR, TMPDIR: '/tmp', ...request.env };
    for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
    if (Object.keys(request.secretEnv ?? {}).length > 0) args.push('--args', String(SECRET_ARGS_FD));
    // stdout and stderr are already one open file (the attempt's log), so their order is the order written.
    args.push('--', '/bin/sh', '-c', request.command);
    return args;
  }

  async start(request: ExecutionRequest): Promise<Execution> {
    const reason = await this.unavailableReason();
    if (reason) throw new HangarError('E_EXECUTOR_UNAVAILABLE', reason);
    const attemptKey = `${request.jobId}-${request.attempt}`;
    const limits = prepareLimits(request.limits, this.cgroupParent, attemptKey);
    if (request.limits.cpus !== undefined || request.limits.memoryMb !== undefined) {
      this.options.logger?.info({ job: request.jobId, attempt: request.attempt, method: limits.method }, limits.note);
    }
    const argv = [...limits.prefix, this.bwrap, '--info-fd', '3', ...this.sandboxArgs(request)];
    const started = Date.now();
    // detached: bwrap leads its own process group, so a signal to -pgid never reaches the agent.
    // The log file is stdout and stderr: the job's output and bwrap's own errors (a bad bind) land there.
    const { fd } = request.output;
    // Secrets as NUL-separated `--setenv NAME VALUE` on fd 4 (--args above), read by bwrap before the sandbox starts.
    const secretArgs = Object.entries(request.secretEnv ?? {}).flatMap(([key, value]) => ['--setenv', key, value]);
    const stdio: StdioOptions = ['ignore', fd, fd, 'pipe', ...(secretArgs.length > 0 ? ['pipe' as const] : [])];
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio });
    if (secretArgs.length > 0) {
      const secrets = child.stdio[SECRET_ARGS_FD] as NodeJS.WritableStream;
      secrets.on('error', (error) =>
        this.options.logger?.warn({ err: error, job: request.jobId }, 'could not pass the job its secrets'),
      );
      secrets.end(secretArgs.map((arg) => `${arg}\0`).join(''));
    }
    const execution = new SandboxExecution(child.pid!, limits.cleanup);
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
        this.running.delete(execution);
        execution.finish();
        resolveDone(execution.result(code, signal));
      });
    });
    return execution;
  }

  async recover(state: Record<string, unknown>): Promise<void> {
    const pid = typeof state['pid'] === 'number' ? state['pid'] : undefined;
    const startTime = typeof state['startTime'] === 'number' ? state['startTime'] : undefined;
    const namespace = typeof state['pidNamespace'] === 'number' ? state['pidNamespace'] : undefined;
    if (pid === undefined || startTime === undefined) return;
    // The pid is ours only if it started when we recorded it; otherwise it was reused: leave it alone.
    // The pid is ours only if it started when we recorded it; otherwise it was reused: leave it alone.
    // (With --die-with-parent bwrap normally took its sandbox down with the crashed agent already.)
    if (processStartTime(pid) !== startTime) return;
    signalSandbox(pid, namespace, 'SIGKILL');
    await waitSandboxGone(pid, namespace, 5_000);
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.running].map((execution) => execution.cancel(0)));
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
  ) {
    this.startTime = processStartTime(pid);
  }

  checkpointState(): Record<string, unknown> {
    return { pid: this.pid, pgid: this.pid, startTime: this.startTime, pidNamespace: this.namespace };
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

function signalName(number: number): string | null {
  const entry = Object.entries(constants.signals).find(([, value]) => value === number);
  return entry ? entry[0] : null;
}

function describePath(path: string): 'dir' | 'symlink' | 'missing' {
  try {
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) return 'symlink';
    return stat.isDirectory() ? 'dir' : 'missing';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
}

function isInside(parent: string, path: string): boolean {
  const rel = relative(parent, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function findCgroupParentSafely(): string | undefined {
  return process.platform === 'linux' ? findCgroupParent() : undefined;
}
