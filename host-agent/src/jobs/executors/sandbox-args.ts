import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';

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

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface SandboxArgsInput {
  command: string;
  env: Record<string, string>;
  /** `outbound`: the launcher made the network namespace bwrap shares (sandbox-launch.ts). */
  network: 'outbound' | 'none' | 'host';
  /** With `outbound`: bwrap reads the sandbox's /etc/resolv.conf (slirp4netns' DNS) from this fd. */
  resolvConfFd?: number;
  /**
   * With `outbound`: the job's host uid and gid. The launcher's user namespace maps them to root
   * (so slirp4netns can sandbox itself there, sandbox-network.ts); bwrap maps them back, so the
   * job's uid and gid are what they are on the host, as with the other networks.
   */
  jobIds?: { uid: number; gid: number };
  /** The host path bwrap binds at /work (see sandbox-launch.ts for why it may not be the workdir's). */
  workdirSource: string;
  /** Host paths never to expose, even under a bound system dir. */
  hidden: readonly string[];
  /** What wraps the job's shell inside the sandbox (the limits' prlimit, taskset). */
  inner: readonly string[];
  /** bwrap reads more arguments (the job's secrets) from this fd (`--args`), never from its command line. */
  secretArgsFd?: number;
  /** The agent alone holds the other end of this fd: its EOF means the agent is gone or done (see below). */
  agentLinkFd?: number;
}

/**
 * What the sandbox runs first when there is an agent link on `fd`: a watcher in the background
 * that reads the link until the agent's end closes (the agent gone, or done with the attempt once
 * bwrap has exited), then kills every process of the sandbox; then the job (the rest of the
 * arguments) in its place, without the link.
 *
 * bwrap's --die-with-parent alone leaves a gap: the sandbox's init asks the kernel to die with
 * bwrap only once it has set the sandbox up (PR_SET_PDEATHSIG, no check that bwrap still lives), so
 * an agent killed in its first ~100 ms took bwrap with it (sandbox-launch.ts) and left the init
 * running the job, reparented to the host's init. The watcher closes it: started before the job,
 * it sees an agent that died at any time, before or after. `kill -1` reaches every process of the
 * caller's pid namespace but its init and itself, and is confined to it; with the job gone, the
 * init and then the watcher end. The job stays the sandbox's first process (exec), so its exit
 * status and signals are what they were; the watcher, in the background, does not keep the sandbox
 * alive (bwrap ends it with its first process). A job may kill the watcher (same user): it then
 * relies on --die-with-parent alone, which holds once the sandbox is up. The kill needs the pid
 * namespace bwrapArgs always asks for (--unshare-pid), and checks it is in one: its shell is pid 2.
 */
function agentWatcher(fd: number): string {
  // Only as pid 2 (or 1): a process the sandbox's pid namespace holds, never one of the host's.
  // Silent: it writes nothing to the job's log (its kill finds nothing left when the job has ended).
  const kill = '[ "$$" -le 2 ] && kill -s KILL -- -1';
  return `{ while read -r _; do :; done; ${kill}; } <&${fd} >/dev/null 2>&1 & exec "$@" ${fd}<&-`;
}

/**
 * bwrap's arguments for a job: a user namespace of its own in which the job holds no capability
 * and may make no further namespace (each new one would be a fresh set of capabilities to attack
 * the kernel with), new pid/ipc/uts namespaces (and net for `none`; `outbound` shares the one
 * the launcher made), system dirs read-only, its workdir at /work, its own /tmp, /proc and minimal /dev, and a clean environment.
 */
export function bwrapArgs(input: SandboxArgsInput): string[] {
  const args: string[] = ['--unshare-user', '--disable-userns', '--cap-drop', 'ALL'];
  args.push('--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--unshare-uts');
  // `outbound` shares the namespace the launcher made, whose only way out is slirp4netns; `host`
  // shares the host's (its loopback services too).
  if (input.network === 'none') args.push('--unshare-net');
  if (input.jobIds) args.push('--uid', String(input.jobIds.uid), '--gid', String(input.jobIds.gid));
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
  for (const name of ETC_ENTRIES) {
    // The host's resolver may be on its loopback (127.0.0.53), which the sandbox cannot reach.
    if (name === 'resolv.conf' && input.resolvConfFd !== undefined) {
      args.push('--ro-bind-data', String(input.resolvConfFd), '/etc/resolv.conf');
    } else args.push('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
  }
  // A hidden path under a bound system dir (a data dir in /opt, a $HOME under /usr/local) gets an
  // empty tmpfs over it, so binding /usr never exposes it.
  for (const path of input.hidden) {
    if (bound.some((dir) => isInside(dir, path)) && existsSync(path)) args.push('--tmpfs', path);
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  args.push('--bind', input.workdirSource, SANDBOX_WORKDIR, '--chdir', SANDBOX_WORKDIR);
  // The root is a tmpfs bwrap made; read-only, so nothing outside /work and /tmp can be written.
  args.push('--remount-ro', '/');
  args.push('--clearenv');
  const env = { PATH: DEFAULT_PATH, HOME: SANDBOX_WORKDIR, TMPDIR: '/tmp', ...input.env };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  if (input.secretArgsFd !== undefined) args.push('--args', String(input.secretArgsFd));
  // stdout and stderr are already one open file (the attempt's log), so their order is the order written.
  args.push('--');
  if (input.agentLinkFd !== undefined) args.push('/bin/sh', '-c', agentWatcher(input.agentLinkFd), 'hangar-sandbox');
  args.push(...input.inner, '/bin/sh', '-c', input.command);
  return args;
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
