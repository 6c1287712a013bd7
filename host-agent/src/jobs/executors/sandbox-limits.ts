import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/**
 * CPU and memory limits for a sandboxed attempt. cgroup v2 gives real limits (cpu.max is a
 * bandwidth quota, memory.max counts the whole tree); without a writable cgroup v2 hierarchy
 * (containers, hybrid v1 hosts, no delegation) we fall back to what an unprivileged process can
 * do on its own: RLIMIT_AS through `prlimit` (address space per process, not resident memory, so
 * it is stricter than memory.max for runtimes that reserve large heaps) and `taskset` for CPUs.
 */
export type LimitMethod = 'cgroup-v2' | 'rlimit';

export interface AttemptLimits {
  cpus?: number;
  memoryMb?: number;
}

export interface PreparedLimits {
  method: LimitMethod;
  /** Argv placed before `bwrap` (prlimit/taskset, or a shell that joins the cgroup first). */
  prefix: string[];
  /** A line for the log saying how limits are applied. */
  note: string;
  /** Removes the per-attempt cgroup, if one was made. */
  cleanup(): void;
}

const CPU_PERIOD_US = 100_000;

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
    // Children only get cpu.max/memory.max when the parent delegates those controllers. Enabling
    // them ourselves fails (EBUSY) while the agent's own process sits in that cgroup; then we fall back.
    if (!/\bcpu\b/.test(controllers) || !/\bmemory\b/.test(controllers)) {
      writeFileSync(join(parent, 'cgroup.subtree_control'), '+cpu +memory');
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
    ? `CPU and memory limits via cgroup v2 (${cgroupParent})`
    : 'cgroup v2 is not writable here: memory limited per process with RLIMIT_AS (prlimit), CPUs with taskset';
}

export function prepareLimits(
  limits: AttemptLimits,
  cgroupParent: string | undefined,
  attemptKey: string,
): PreparedLimits {
  const none: PreparedLimits = { method: 'rlimit', prefix: [], note: 'no limits requested', cleanup: () => {} };
  if (limits.cpus === undefined && limits.memoryMb === undefined) return none;
  if (cgroupParent) {
    const dir = join(cgroupParent, `hangar-${attemptKey}`);
    mkdirSync(dir, { recursive: true });
    if (limits.cpus !== undefined) {
      writeFileSync(join(dir, 'cpu.max'), `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
    }
    if (limits.memoryMb !== undefined) {
      writeFileSync(join(dir, 'memory.max'), String(limits.memoryMb * 1024 * 1024));
    }
    // The shell joins the cgroup before exec'ing bwrap, so no sandbox process ever starts outside it.
    return {
      method: 'cgroup-v2',
      prefix: ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir],
      note: `limits via cgroup v2 ${dir}`,
      cleanup: () => removeCgroup(dir),
    };
  }
  const prefix: string[] = [];
  if (limits.memoryMb !== undefined) prefix.push('prlimit', `--as=${limits.memoryMb * 1024 * 1024}`, '--');
  if (limits.cpus !== undefined) {
    const count = Math.max(1, Math.min(availableParallelism(), Math.ceil(limits.cpus)));
    prefix.push('taskset', '-c', count === 1 ? '0' : `0-${count - 1}`);
  }
  return {
    method: 'rlimit',
    prefix,
    note: 'limits via RLIMIT_AS (prlimit) and taskset: cgroup v2 is not writable here',
    cleanup: () => {},
  };
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
