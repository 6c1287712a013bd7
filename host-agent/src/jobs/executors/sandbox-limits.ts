import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_JOB_PIDS } from '@hangar/shared';

/**
 * CPU, memory and process limits for a sandboxed attempt, on by default. cgroup v2 gives real
 * limits (memory.max and pids.max count the whole tree, cpu.max is a bandwidth quota). Without a
 * cgroup v2 hierarchy the agent may write (containers, hybrid v1 hosts, no delegation) the job's
 * command runs under `prlimit`, inside the sandbox: RLIMIT_NPROC and RLIMIT_AS, soft and hard
 * alike, which a process with no capability cannot raise again, and `taskset` for CPUs.
 *
 * Since Linux 5.14 RLIMIT_NPROC is counted per user (uid) *in each user namespace*: set inside the
 * sandbox's own namespace it counts that sandbox's tasks alone, not every process of the job user
 * on the host (older kernels count them all together: concurrent jobs then share the number, one
 * more reason the job user is a dedicated one).
 */
export type LimitMethod = 'cgroup-v2' | 'rlimit';

export interface AttemptLimits {
  cpus?: number;
  memoryMb?: number;
  pids?: number;
}

export interface PreparedLimits {
  method: LimitMethod;
  /** The attempt's cgroup, which the launcher joins before it becomes bwrap; undefined with rlimits. */
  cgroupDir: string | undefined;
  /** Argv placed before the job's `/bin/sh -c` inside the sandbox (prlimit, taskset); empty with cgroups. */
  inner: string[];
  /** What applies, for the agent's log. */
  note: string;
  /** Removes the per-attempt cgroup, if one was made. */
  cleanup(): void;
}

/** Host facts the defaults and the rlimit fallback depend on; injectable for tests. */
export interface LimitHost {
  totalMemoryBytes: number;
  cpuCount: number;
  /** Absolute paths of util-linux's prlimit and taskset (the sandbox binds /usr, so they are the same inside). */
  prlimit: string;
  taskset: string;
}

const MIB = 1024 * 1024;
const CPU_PERIOD_US = 100_000;

/** Processes and threads a job may have when it names no number (why that many: see DEFAULT_JOB_PIDS). */
export const DEFAULT_PIDS = DEFAULT_JOB_PIDS;

/**
 * memory.max when a job names no limit: three quarters of the host's RAM, so a runaway job is
 * killed inside its own cgroup while the agent, tmux sessions and the OS keep the last quarter.
 */
export function defaultCgroupMemoryMb(totalMemoryBytes: number): number {
  return Math.floor((totalMemoryBytes * 0.75) / MIB);
}

/**
 * RLIMIT_AS when a job names no limit. Address space is not memory: runtimes reserve far more than
 * they touch (V8 reserves ~10 GiB for each WebAssembly memory, which Node's fetch uses; a JVM
 * reserves its whole maximum heap), so a limit near the RAM of a small host would break ordinary
 * tools. So: the host's RAM, never below 16 GiB. One process cannot reserve past what the machine
 * has; beyond that, the launcher's oom_score_adj makes the job, not the agent, the OOM killer's pick.
 */
export function defaultAddressSpaceMb(totalMemoryBytes: number): number {
  return Math.max(16 * 1024, Math.floor(totalMemoryBytes / MIB));
}

export function currentLimitHost(): LimitHost {
  return {
    totalMemoryBytes: totalmem(),
    cpuCount: availableParallelism(),
    prlimit: findProgram('prlimit') ?? 'prlimit',
    taskset: findProgram('taskset') ?? 'taskset',
  };
}

/** The directory where per-attempt cgroups can be made, or undefined when cgroup v2 is not ours to write. */
export function findCgroupParent(root = '/sys/fs/cgroup'): string | undefined {
  if (!existsSync(join(root, 'cgroup.controllers'))) return undefined;
  const self = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((line) => line.startsWith('0::'));
  if (!self) return undefined;
  const parent = join(root, self.slice(3).trim());
  try {
    accessSync(parent, constants.W_OK);
    const controllers = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8');
    // Children only get cpu.max/memory.max/pids.max when the parent delegates those controllers.
    // Enabling them ourselves fails (EBUSY) while the agent's own process sits in that cgroup; then we fall back.
    if (!['cpu', 'memory', 'pids'].every((name) => new RegExp(`\\b${name}\\b`).test(controllers))) {
      writeFileSync(join(parent, 'cgroup.subtree_control'), '+cpu +memory +pids');
    }
    return parent;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EBUSY' || code === 'ENOENT') {
      return undefined;
    }
    throw error;
  }
}

export function describeLimitMethod(cgroupParent: string | undefined): string {
  return cgroupParent
    ? `CPU, memory and process limits via cgroup v2 (${cgroupParent})`
    : 'cgroup v2 is not writable here: processes and memory limited with RLIMIT_NPROC and RLIMIT_AS (prlimit), CPUs with taskset';
}

export function prepareLimits(
  limits: AttemptLimits,
  cgroupParent: string | undefined,
  attemptKey: string,
  host: LimitHost,
): PreparedLimits {
  const pids = limits.pids ?? DEFAULT_PIDS;
  if (cgroupParent) {
    const memoryMb = limits.memoryMb ?? defaultCgroupMemoryMb(host.totalMemoryBytes);
    const dir = join(cgroupParent, `hangar-${attemptKey}`);
    mkdirSync(dir, { recursive: true });
    if (limits.cpus !== undefined) {
      writeFileSync(join(dir, 'cpu.max'), `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
    }
    writeFileSync(join(dir, 'memory.max'), String(memoryMb * MIB));
    writeFileSync(join(dir, 'pids.max'), String(pids));
    return {
      method: 'cgroup-v2',
      cgroupDir: dir,
      inner: [],
      note: `limits via cgroup v2 ${dir}: ${pids} tasks, ${memoryMb} MiB${cpuNote(limits.cpus)}`,
      cleanup: () => removeCgroup(dir),
    };
  }
  const memoryMb = limits.memoryMb ?? defaultAddressSpaceMb(host.totalMemoryBytes);
  // prlimit sets soft and hard limits alike: the job cannot raise them again.
  const inner = [host.prlimit, `--nproc=${pids}`, `--as=${memoryMb * MIB}`, '--'];
  if (limits.cpus !== undefined) {
    const count = Math.max(1, Math.min(host.cpuCount, Math.ceil(limits.cpus)));
    inner.push(host.taskset, '-c', count === 1 ? '0' : `0-${count - 1}`);
  }
  return {
    method: 'rlimit',
    cgroupDir: undefined,
    inner,
    note: `limits via RLIMIT_NPROC ${pids} and RLIMIT_AS ${memoryMb} MiB (prlimit)${cpuNote(limits.cpus)}: cgroup v2 is not writable here`,
    cleanup: () => {},
  };
}

function cpuNote(cpus: number | undefined): string {
  return cpus === undefined ? '' : `, ${cpus} CPUs`;
}

/** The first executable `name` on the sandbox's PATH, as seen from the host. */
function findProgram(name: string): string | undefined {
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'EACCES') {
        throw error;
      }
    }
  }
  return undefined;
}

function removeCgroup(dir: string): void {
  try {
    rmdirSync(dir);
  } catch (error) {
    // EBUSY: a process is still inside (it is being killed); ENOENT: already gone. Either way
    // there is nothing more to do here, and recover() will not find it ours next time.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'ENOENT') throw error;
  }
}
