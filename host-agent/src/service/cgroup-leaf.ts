import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CONTROLLERS = ['cpu', 'memory', 'pids'] as const;
/** The leaf the agent (and the tmux server it starts) sits in, inside its delegated cgroup. */
export const AGENT_LEAF = 'agent';

/**
 * Under systemd with Delegate=yes the service's cgroup is the agent's to manage, but cgroup v2's
 * "no internal processes" rule lets a cgroup hand controllers to children only while it holds no
 * process itself. So the agent moves itself into a leaf `<service>/agent`, enables cpu, memory
 * and pids for the children, and returns `<service>` as the place for per-job cgroups (beside
 * the leaf). systemd 254 can do the move itself (DelegateSubgroup=), but Debian 12 and Ubuntu 22.04
 * ship older ones. Returns undefined, and changes nothing it cannot undo, when the cgroup is not a
 * writable v2 cgroup with those controllers: jobs then fall back to rlimits (sandbox-limits.ts).
 */
export function enterDelegatedLeaf(
  options: { root?: string; selfCgroup?: string; pid?: number } = {},
): { parent: string } | { reason: string } {
  const root = options.root ?? '/sys/fs/cgroup';
  if (!existsSync(join(root, 'cgroup.controllers'))) return { reason: `${root} is not a cgroup v2 hierarchy` };
  const self = (options.selfCgroup ?? readFileSync('/proc/self/cgroup', 'utf8'))
    .split('\n')
    .find((line) => line.startsWith('0::'));
  if (!self) return { reason: 'this process has no cgroup v2 path' };
  const service = join(root, self.slice(3).trim());
  const available = readFileSync(join(service, 'cgroup.controllers'), 'utf8').split(/\s+/);
  const missing = CONTROLLERS.filter((name) => !available.includes(name));
  if (missing.length > 0)
    return { reason: `the delegated cgroup ${service} lacks the ${missing.join(', ')} controller(s)` };
  try {
    const leaf = join(service, AGENT_LEAF);
    mkdirSync(leaf, { recursive: true });
    writeFileSync(join(leaf, 'cgroup.procs'), String(options.pid ?? process.pid));
    writeFileSync(join(service, 'cgroup.subtree_control'), CONTROLLERS.map((name) => `+${name}`).join(' '));
    return { parent: service };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EBUSY' || code === 'ENOENT') {
      return { reason: `could not take the delegated cgroup ${service} (${code})` };
    }
    throw error;
  }
}
