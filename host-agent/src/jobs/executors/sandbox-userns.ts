import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Why the sandbox cannot run here and what fixes it (doctor shows both; a refused job gets both in one message). */
export interface SandboxProblem {
  problem: string;
  fix: string;
}

/**
 * The kernel switches that forbid unprivileged user namespaces, each with what turns it back on.
 * Debian's own switch (kernels before 6.x carried it), the generic per-user count, and Ubuntu
 * 23.10+'s AppArmor restriction (creating one succeeds, but the namespace has no capability, so
 * bwrap fails while setting it up).
 */
const SWITCHES = [
  {
    name: 'kernel.unprivileged_userns_clone',
    file: 'kernel/unprivileged_userns_clone',
    forbids: (value: string) => value === '0',
    fix: 'sysctl -w kernel.unprivileged_userns_clone=1 (Debian’s switch)',
  },
  {
    name: 'user.max_user_namespaces',
    file: 'user/max_user_namespaces',
    forbids: (value: string) => value === '0',
    fix: 'sysctl -w user.max_user_namespaces=15000',
  },
  {
    name: 'kernel.apparmor_restrict_unprivileged_userns',
    file: 'kernel/apparmor_restrict_unprivileged_userns',
    forbids: (value: string) => value === '1',
    fix:
      'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 23.10 and later; or an AppArmor ' +
      'profile for bwrap that allows userns)',
  },
] as const;

/** What bwrap says when the kernel refuses it a user namespace (EPERM, ENOSPC, or no capability inside it). */
const USERNS_FAILURE =
  /namespace|uid map|gid map|setgroups|No permissions|No space left|RTM_NEWADDR|loopback|Operation not permitted|Permission denied/i;

/**
 * Explains a failed sandbox probe. When a sysctl forbids user namespaces, that one and its fix;
 * when bwrap's words say namespaces but no switch is set (a container's seccomp profile, say),
 * every switch; otherwise bwrap's own message.
 */
export function explainProbeFailure(stderr: string, sysctlDir = '/proc/sys'): SandboxProblem {
  const said = stderr.trim().split('\n').slice(-3).join(' ') || 'no message';
  const set = SWITCHES.filter((entry) => {
    const value = readSysctl(sysctlDir, entry.file);
    return value !== undefined && entry.forbids(value);
  });
  if (set.length === 0 && !USERNS_FAILURE.test(stderr)) {
    return { problem: `bubblewrap could not start a sandbox here (${said})`, fix: 'see the message above' };
  }
  const saysWhich = set.length > 0 ? ` (${set.map((entry) => `${entry.name} forbids them`).join('; ')})` : '';
  const fixes =
    set.length > 0
      ? set.map((entry) => entry.fix).join(' and ')
      : `whichever of these applies: ${SWITCHES.map((entry) => entry.fix).join('; ')}`;
  return {
    problem:
      `bubblewrap cannot create an unprivileged user namespace here${saysWhich}: ${said}. ` +
      'The sandbox executor refuses to run jobs without one rather than run them with the agent’s privileges',
    fix: `allow unprivileged user namespaces (in /etc/sysctl.d/ too, to keep it after a reboot), ${fixes}`,
  };
}

function readSysctl(dir: string, file: string): string | undefined {
  try {
    return readFileSync(join(dir, file), 'utf8').trim();
  } catch (error) {
    // A switch this kernel does not have cannot forbid anything.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
