import {
  closeSync,
  constants as fsConstants,
  cpSync,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import { HangarError, shellQuote } from '@hangar/shared';
import type { Logger } from 'pino';
import { GUEST_SHARE_ROOT, TART_INSTALL_HINT, TartCli } from './tart-cli.js';
import type { GuestAccess, GuestProcess } from './tart-guest.js';
import { MAX_MACOS_VMS, SHARE_NAME, TartPool, type Lease } from './tart-pool.js';
import type { Execution, ExecutionRequest, ExecutionResult, Executor } from './types.js';

export interface TartExecutorOptions {
  /** The agent's data dir; slots live in `<data>/tart/slots/<n>/`. */
  dataDir: string;
  /** Image cloned when a request names none, e.g. `ghcr.io/cirruslabs/macos-sequoia-xcode:latest`. */
  defaultImage: string;
  /** Path of the tart binary; `tart` from PATH by default. */
  tartBinary?: string;
  /** Pre-booted VMs kept ready (0–2, default 1). */
  warmSize?: number;
  /**
   * On dispose, leave warm (unused) VMs running so the next agent start adopts them and the first
   * job after a restart starts warm. Default false: a stopped agent holds no VM, no RAM, no licence slot.
   */
  keepWarmOnDispose?: boolean;
  /** CPU and memory given to every VM (`tart set`); the image's own settings otherwise. */
  vmSettings?: { cpu?: number; memoryMb?: number };
  bootTimeoutS?: number;
  readyTimeoutS?: number;
  stopTimeoutS?: number;
  /** How long a VM's `tart run` may take to exit after `tart stop` (default 30 s; tests shorten it). */
  runExitMs?: number;
  /** How long an adopted VM that would not stop is checked for going off (default 10 min; tests shorten it). */
  offCheckForMs?: number;
  /** How long `tart stop` may run past its own timeout before it is cut off and the VM's `tart run` killed (default 5 s; tests shorten it). */
  stopGraceMs?: number;
  /**
   * How jobs reach the guest. 'exec': `tart exec` through the Tart guest agent (Cirrus Labs'
   * images ship it; no network or keys needed). 'ssh': the system ssh client to `tart ip`'s address.
   * 'auto' (default): one `tart exec` probe per VM (`execProbeTimeoutMs`), SSH when the agent does
   * not answer. Either way the same wrapper script runs from the shared directory.
   */
  guestAccess?: GuestAccess;
  /** SSH login, default `admin` (Cirrus Labs' images). */
  sshUser?: string;
  /**
   * Private key for SSH, default `<data>/tart/id_ed25519`. SSH runs with BatchMode (no password
   * prompt), so the image must have the key's public half in `~<sshUser>/.ssh/authorized_keys`.
   * Cirrus Labs' images only accept the password admin/admin; bake a key into your own image once:
   *
   *     ssh-keygen -t ed25519 -N '' -f <data>/tart/id_ed25519
   *     tart clone ghcr.io/cirruslabs/macos-sequoia-base:latest my-image
   *     tart run --no-graphics my-image &
   *     ssh-copy-id -i <data>/tart/id_ed25519.pub admin@$(tart ip my-image --wait 120)   # password: admin
   *     tart stop my-image
   *
   * then use `my-image` as the default image. Host keys go to `<data>/tart/known_hosts`
   * (accept-new: recorded on first contact; a different key later at the same IP is refused).
   */
  sshKey?: string;
  /** Path of the ssh client; `ssh` from PATH by default. */
  sshBinary?: string;
  /** Milliseconds the 'auto' probe gives `tart exec` (default 10 s; with no agent it would wait ~30 s). */
  execProbeTimeoutMs?: number;
  logger?: Logger;
}

/**
 * macOS jobs in Tart VMs, one fresh VM per attempt, from a warm pool of at most two. A slot's
 * share is fixed at boot (`--dir` cannot change on a running VM), so the attempt's workspace is
 * moved into `<slot dir>/<attempt>/work` and the VM runs a wrapper from there with `tart exec`,
 * or over SSH for images without the Tart guest agent (see `guestAccess`).
 * Verified against the stand-in in test/fixtures/tart only; see the tests for the contract.
 */
export class TartExecutor implements Executor {
  readonly name = 'tart' as const;
  readonly maxConcurrency = MAX_MACOS_VMS;
  readonly cli: TartCli;
  readonly pool: TartPool;
  private initialized: Promise<void> | undefined;
  private readonly running = new Set<TartExecution>();

  constructor(private readonly options: TartExecutorOptions) {
    this.cli = new TartCli({
      ...(options.tartBinary === undefined ? {} : { binary: options.tartBinary }),
      ...(options.stopGraceMs === undefined ? {} : { stopGraceMs: options.stopGraceMs }),
    });
    this.pool = new TartPool({
      cli: this.cli,
      image: options.defaultImage,
      slotsDir: join(options.dataDir, 'tart', 'slots'),
      warmSize: options.warmSize ?? 1,
      ...(options.bootTimeoutS === undefined ? {} : { bootTimeoutS: options.bootTimeoutS }),
      ...(options.readyTimeoutS === undefined ? {} : { readyTimeoutS: options.readyTimeoutS }),
      ...(options.stopTimeoutS === undefined ? {} : { stopTimeoutS: options.stopTimeoutS }),
      ...(options.runExitMs === undefined ? {} : { runExitMs: options.runExitMs }),
      ...(options.offCheckForMs === undefined ? {} : { offCheckForMs: options.offCheckForMs }),
      ...(options.vmSettings === undefined ? {} : { vmSettings: options.vmSettings }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.execProbeTimeoutMs === undefined ? {} : { execProbeTimeoutMs: options.execProbeTimeoutMs }),
      guestAccess: options.guestAccess ?? 'auto',
      ...(options.guestAccess === 'exec' ? {} : { ssh: this.sshSettings() }),
    });
  }

  private sshSettings() {
    return {
      user: this.options.sshUser ?? 'admin',
      key: this.options.sshKey ?? join(this.options.dataDir, 'tart', 'id_ed25519'),
      knownHostsFile: join(this.options.dataDir, 'tart', 'known_hosts'),
      ...(this.options.sshBinary === undefined ? {} : { binary: this.options.sshBinary }),
    };
  }

  async unavailableReason(): Promise<string | undefined> {
    try {
      await this.cli.version();
    } catch (error) {
      if (error instanceof HangarError && error.code === 'E_EXECUTOR_UNAVAILABLE') return error.message;
      return `tart does not run (${(error as Error).message}); ${TART_INSTALL_HINT}`;
    }
    if (this.options.guestAccess === 'ssh' && !existsSync(this.sshSettings().key)) {
      return `the tart executor is set to reach VMs over SSH, but there is no key at ${this.sshSettings().key} (see its sshKey option)`;
    }
    return undefined;
  }

  /** Reconciles leftover `hangar-*` VMs and starts warming the pool; start() calls it once. */
  initialize(): Promise<void> {
    this.initialized ??= (async () => {
      const reason = await this.unavailableReason();
      if (reason) throw new HangarError('E_EXECUTOR_UNAVAILABLE', reason);
      await this.pool.reconcile();
      this.pool.fill();
    })();
    return this.initialized;
  }

  async start(request: ExecutionRequest): Promise<Execution> {
    await this.initialize();
    if (request.image !== undefined && request.image !== this.options.defaultImage) {
      // The pool is warm for one image; another would need its own pool (and the 2-VM limit is shared).
      throw new HangarError(
        'E_BAD_REQUEST',
        `this host's tart pool runs ${this.options.defaultImage}; image ${request.image} is not configured`,
      );
    }
    const lease = await this.pool.acquire(request.timing);
    const jobDir = join(lease.slotDir, `${request.jobId}-${request.attempt}`);
    request.checkpoint({ vm: lease.vm, slot: lease.slot, jobDir });
    try {
      mkdirSync(jobDir, { recursive: true });
      moveDir(request.workdir, join(jobDir, 'work'));
      writeFileSync(join(jobDir, 'command'), request.command);
      // The guest takes env only from this script: secrets are in it while the job runs, inside the
      // agent's data dir (0700); the job dir is removed after.
      writeFileSync(join(jobDir, 'run.sh'), wrapperScript({ ...request.env, ...request.secretEnv }));
    } catch (error) {
      await this.pool.release(lease, request.timing);
      throw error;
    }
    const guestScript = `${GUEST_SHARE_ROOT}/${SHARE_NAME}/${request.jobId}-${request.attempt}/run.sh`;
    const execution = new TartExecution(this.cli, this.pool, lease, jobDir, request, guestScript);
    this.options.logger?.debug({ vm: lease.vm, access: lease.guest.kind }, 'tart job started');
    this.running.add(execution);
    // Both ways: a `finally` here would make a second promise whose rejection nobody handles.
    const forget = () => void this.running.delete(execution);
    execution.done.then(forget, forget);
    return execution;
  }

  async recover(state: Record<string, unknown>): Promise<void> {
    const vm = typeof state['vm'] === 'string' ? state['vm'] : undefined;
    if (!vm || !vm.startsWith('hangar-')) return;
    if (await this.unavailableReason()) return;
    // Reconcile deletes it too (it was busy, so never adopted); doing it here makes recover() stand alone.
    await this.cli.stop(vm, 5);
    for (let i = 0; i < 120; i++) {
      const entry = (await this.cli.list()).find((row) => row.Name === vm);
      if (!entry) return;
      if (!entry.Running) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await this.cli.delete(vm);
    if (typeof state['jobDir'] === 'string') rmSync(state['jobDir'], { recursive: true, force: true });
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.running].map((execution) => execution.cancel(0)));
    if (this.initialized) await this.initialized.catch(() => undefined);
    await this.pool.dispose(this.options.keepWarmOnDispose ?? false);
  }
}

class TartExecution implements Execution {
  readonly done: Promise<ExecutionResult>;
  private readonly exec: GuestProcess;
  private cancelled = false;
  private finished = false;

  constructor(
    private readonly cli: TartCli,
    pool: TartPool,
    private readonly lease: Lease,
    private readonly jobDir: string,
    request: ExecutionRequest,
    guestScript: string,
  ) {
    const started = Date.now();
    // bash, not sh: its `set -m` gives the job its own process group without a terminal (dash refuses).
    const exec = lease.guest.spawn(['/bin/bash', guestScript], (chunk) => request.output.write(chunk));
    this.exec = exec;
    this.done = (async () => {
      let execCode: number | undefined;
      let failure: unknown;
      try {
        execCode = (await exec.done).exitCode;
      } catch (error) {
        failure = error;
      }
      this.finished = true;
      request.timing('run', Date.now() - started);
      const collectStarted = Date.now();
      let code = execCode;
      let off = false;
      try {
        // The guest writes what it likes into the share, links too (virtiofs keeps them as they are), and
        // a process of it may outlive the job: the share is read only once the VM is off (the shutdown
        // counts as collect), and no link in it is followed.
        await pool.stopVm(lease);
        off = true;
        code = takeResults(jobDir, request.workdir) ?? execCode;
      } catch (error) {
        failure ??= error;
      } finally {
        // A VM that did not stop may still change the share under a recursive delete (a folder swapped
        // for a link mid-way): the pool's teardown clears it once the VM is off.
        if (off) rmSync(jobDir, { recursive: true, force: true });
        request.timing('collect', Date.now() - collectStarted);
        await pool.release(lease, request.timing);
      }
      if (failure !== undefined) throw failure;
      if (this.cancelled && code !== undefined && code > 128) {
        const signal = Object.entries(constants.signals).find(([, number]) => number === code - 128)?.[0];
        return { exitCode: null, signal: signal ?? null };
      }
      return { exitCode: code ?? null, signal: null };
    })();
  }

  async cancel(graceMs: number): Promise<void> {
    if (this.finished) return this.done.then(() => undefined);
    this.cancelled = true;
    // Read while the guest runs: a link there is not followed, and the VM itself is stopped instead.
    let pgid: number | undefined;
    try {
      pgid = readGuestNumber(join(this.jobDir, 'pgid'));
    } catch (error) {
      if (!(error instanceof HangarError)) throw error;
    }
    // The grace is the job's, until its guest process ends: what follows (the VM's shutdown, the
    // results, the delete) may take longer, and is not a job that ignored the signal.
    const jobEnded = this.exec.done.then(
      () => undefined,
      () => undefined,
    );
    let signalled = false;
    if (pgid !== undefined && Number.isInteger(pgid) && pgid > 1) {
      signalled = (await this.signalGroup(pgid, 'TERM')) === 0;
      if (signalled && !(await settlesWithin(jobEnded, graceMs))) {
        signalled = (await this.signalGroup(pgid, 'KILL')) === 0;
      }
    }
    // No process group to signal (not started yet, or the guest unreachable): stop the VM itself.
    if (!signalled || !(await settlesWithin(jobEnded, 5_000))) {
      await this.cli.stop(this.lease.vm, 0);
      this.exec.kill();
    }
    await this.done.catch(() => undefined);
  }

  /** Neither `tart exec` nor a non-tty SSH session forwards signals, so a kill inside the guest does it. */
  private async signalGroup(pgid: number, signal: 'TERM' | 'KILL'): Promise<number> {
    const command = ['/bin/sh', '-c', `kill -s ${signal} -- -$1`, 'hangar-cancel', String(pgid)];
    return (await this.lease.guest.probe(command, 15_000)).exitCode;
  }
}

function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/**
 * From a stopped VM's job folder: the exit code the wrapper wrote, and the workdir moved back to
 * `workdir`. A link where the folder, the workdir or the exit file should be is refused, never
 * followed: through one a job would have the host move one of its folders into the workdir (to be
 * collected as artifacts, then deleted) or read a device that never ends.
 */
function takeResults(jobDir: string, workdir: string): number | undefined {
  const folder = lstatSync(jobDir, { throwIfNoEntry: false });
  if (folder === undefined) return undefined; // the job removed it: nothing to take back
  if (!folder.isDirectory()) throw unsafeShare('its job folder');
  const code = readGuestNumber(join(jobDir, 'exit'));
  const work = join(jobDir, 'work');
  const found = lstatSync(work, { throwIfNoEntry: false });
  if (found !== undefined) {
    if (!found.isDirectory()) throw unsafeShare('its workdir');
    moveDir(work, workdir);
  }
  return code;
}

/** A small number the guest wrote (exit code, process group): undefined when absent or not one. */
function readGuestNumber(path: string): number | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO opens at once (then is refused below) instead of waiting for a writer.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unsafeShare(`its ${basename(path)} file`);
    throw error;
  }
  try {
    if (!fstatSync(fd).isFile()) throw unsafeShare(`its ${basename(path)} file`);
    const bytes = Buffer.alloc(32);
    const value = Number(
      bytes
        .subarray(0, readSync(fd, bytes, 0, bytes.length, 0))
        .toString('utf8')
        .trim(),
    );
    return Number.isInteger(value) ? value : undefined;
  } finally {
    closeSync(fd);
  }
}

function unsafeShare(what: string): HangarError {
  return new HangarError(
    'E_ARTIFACT_UNSAFE',
    `the job replaced ${what} in the folder it shares with its VM by a link or a special file; nothing was taken from it`,
  );
}

/** A rename when both sides share a filesystem (the usual case: both under the data dir), else a copy. */
function moveDir(from: string, to: string): void {
  try {
    rmSync(to, { recursive: true, force: true });
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    cpSync(from, to, { recursive: true, verbatimSymlinks: true });
    rmSync(from, { recursive: true, force: true });
  }
}

/**
 * Runs in the guest via `tart exec` or SSH. `tart exec` gives no cwd, env or signals and splits stdout from
 * stderr. So: one stream (`exec 2>&1` before anything runs), the job in its own process group
 * (`set -m`) whose id goes to a file the host reads for cancel, and the exit code in a file.
 * Paths are relative to the script: the share is at a different path on the host than in the guest.
 */
export function wrapperScript(env: Record<string, string>): string {
  const exports = Object.entries(env)
    .filter(([key]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
    .map(([key, value]) => `export ${key}=${shellQuote(value)}`)
    .join('\n');
  return `exec 2>&1
dir=$(cd "$(dirname "$0")" && pwd) || exit 126
cd "$dir/work" || exit 126
${exports}
set -m
/bin/sh -c "$(cat "$dir/command")" &
job=$!
echo "$job" > "$dir/pgid"
wait "$job"
code=$?
echo "$code" > "$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit"
exit "$code"
`;
}
