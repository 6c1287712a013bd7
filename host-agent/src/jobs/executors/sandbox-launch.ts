import { lstatSync, mkdirSync } from 'node:fs';
import type { JobUser } from './sandbox-user.js';

/**
 * How the agent starts bwrap. Two ways, one outcome: bwrap runs unprivileged, as the job's user,
 * and puts the job in a user namespace with no capability.
 *
 * - Agent is root: `unshare` gives the launcher a private mount namespace, where it binds the
 *   attempt's workdir on MOUNTPOINT, then `setpriv` drops to the job user (supplementary groups
 *   cleared) and execs bwrap. The bind is needed because an unprivileged bwrap resolves every
 *   source path itself (even `--bind-fd`'s, through realpath, in bwrap 0.8) and the workdir lies
 *   in the agent's data dir, which the job user may not traverse (0700). The bind lives and dies
 *   with that mount namespace; the host never sees it.
 * - Agent is not root: the launcher execs bwrap as the agent's own user.
 *
 * Either way the launcher first sets oom_score_adj to 1000 (the job is the OOM killer's first
 * pick, not the agent or the user's sessions; set by root, the job cannot lower it again) and joins
 * the attempt's cgroup when there is one, so no process of the sandbox ever runs outside it. One
 * process from spawn to bwrap (each step execs the next), so the spawned pid is bwrap's, its
 * process group is the sandbox's, and it dies with the agent.
 *
 * Dying with the agent takes more than bwrap's --die-with-parent: bwrap asks for it (PDEATHSIG)
 * only after it has made the sandbox's first process, over 100 ms after the spawn under load, and
 * an agent killed before that left bwrap reparented to init with nothing to tie it to anyone: the
 * job ran on. So the last step before bwrap is `setpriv --pdeathsig KILL` (after any change of
 * user, which would clear it; kept across exec, except of a setuid bwrap, which has only its own),
 * then a shell that checks its parent is still the agent, since a parent that died before that
 * prctl sends nothing. That shell also leaves a watcher beside bwrap, in its process group: it
 * reads the agent link (AGENT_LINK_FD, whose other end only the agent holds, and closes once bwrap
 * has exited) and on its EOF kills the group. It is there for bwrap's own first process, which
 * stays in this group until it makes the sandbox's session: bwrap dying in its first milliseconds
 * left that process waiting forever for a word from it (4 of 60 agents killed within 40 ms of
 * start here). Inside the sandbox, a second watcher on the same link (sandbox-args.ts) does the
 * same for the sandbox's pid namespace. The watcher keeps bwrap's --info-fd open, so the agent
 * sees the attempt closed only once the watcher has gone too.
 */

/** Where the root launcher binds the workdir for bwrap to find: root-owned and traversable by anyone. */
export const SANDBOX_MOUNTPOINT = '/run/hangar-sandbox';

/** Launcher failures (cgroup, bind, privileges) exit with this, the shell's "could not run it". */
export const LAUNCH_FAILED = 126;

/** The agent's end of this socket is the agent's alone: EOF on it, and the agent is gone or done with the attempt. */
export const AGENT_LINK_FD = 5;

/**
 * Run with PDEATHSIG set: goes on only if the agent ($1) is still its parent, leaves the watcher
 * of the process group (the spawn made this pid its group's), then execs bwrap.
 */
const LAST_STEP = [
  `[ "$PPID" = "$1" ] || exit ${LAUNCH_FAILED}`,
  'shift',
  `{ while read -r _; do :; done; kill -s KILL -- -$$; } <&${AGENT_LINK_FD} >/dev/null 2>&1 &`,
  'exec "$@"',
].join('\n');

/** The launcher's end of the network handshake (outbound only): it says "netns", the agent "up". */
export const NETWORK_FD = 6;

/** bwrap reads the sandbox's /etc/resolv.conf from this fd (outbound only). */
export const RESOLV_CONF_FD = 7;

/**
 * LAST_STEP in a network namespace of its own (outbound): it tells the agent the namespace is
 * made, waits until slirp4netns has brought it up (sandbox-network.ts), and only then runs bwrap.
 * An agent that could not start slirp4netns closes the fd: the job never runs, rather than run
 * with no network or another one.
 */
const OUTBOUND_STEP = [
  `[ "$PPID" = "$1" ] || exit ${LAUNCH_FAILED}`,
  `echo netns >&${NETWORK_FD} && read -r up <&${NETWORK_FD} && [ "$up" = up ] || {`,
  `  echo "hangar: the sandbox network (slirp4netns) did not start" >&2; exit ${LAUNCH_FAILED}; }`,
  `exec ${NETWORK_FD}<&-`,
  'shift',
  `{ while read -r _; do :; done; kill -s KILL -- -$$; } <&${AGENT_LINK_FD} >/dev/null 2>&1 &`,
  'exec "$@"',
].join('\n');

/**
 * What runs LAST_STEP: for outbound, `unshare` first makes a user namespace holding a new network
 * namespace. The user namespace is what lets slirp4netns, run as that same unprivileged user, join
 * the network namespace and configure it; bwrap's own namespaces, nested inside, cannot be joined
 * (its --disable-userns nests one more user namespace, and --userns-block-fd refuses to go with
 * it). The launching user is root there: slirp4netns --enable-sandbox becomes uid and gid 0 in it
 * to make its own mount namespace (sandbox-network.ts); bwrap maps the job back to its host uid
 * and gid (bwrapArgs' jobIds), so the job sees what it would with the other networks.
 */
function lastStep(network: LaunchPlan['network']): string[] {
  if (network !== 'outbound') return ['/bin/sh', '-c', LAST_STEP];
  return ['unshare', '--user', '--map-root-user', '--net', '--', '/bin/sh', '-c', OUTBOUND_STEP];
}

/** Runs as root: binds the workdir, drops to the job user and runs the last step ("$@" from $6). */
const ROOT_LAUNCHER = [
  `echo 1000 > /proc/self/oom_score_adj || exit ${LAUNCH_FAILED}`,
  `if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit ${LAUNCH_FAILED}; fi`,
  `mount --bind -- "$2" "$3" || exit ${LAUNCH_FAILED}`,
  'uid=$4 gid=$5',
  'shift 5',
  'exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --pdeathsig KILL -- "$@"',
].join('\n');

const USER_LAUNCHER = [
  `echo 1000 > /proc/self/oom_score_adj || exit ${LAUNCH_FAILED}`,
  `if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit ${LAUNCH_FAILED}; fi`,
  'shift',
  'exec setpriv --pdeathsig KILL -- "$@"',
].join('\n');

export interface LaunchPlan {
  /** The job user when the agent is root; undefined: bwrap runs as the agent's user. */
  user: JobUser | undefined;
  workdir: string;
  cgroupDir: string | undefined;
  bwrap: string;
  /** The agent's pid: the parent the launcher must still have once it has asked to die with it. */
  agentPid: number;
  /** outbound: the launcher makes the network namespace bwrap shares (see OUTBOUND_STEP). */
  network: 'outbound' | 'none' | 'host';
}

/** The path bwrap binds at /work: the workdir itself, or where the root launcher bound it. */
export function workdirSource(plan: Pick<LaunchPlan, 'user' | 'workdir'>): string {
  return plan.user ? SANDBOX_MOUNTPOINT : plan.workdir;
}

/** The full argv to spawn: launcher, then bwrap with `bwrapArgs`. */
export function launchArgv(plan: LaunchPlan, bwrapArgs: readonly string[]): string[] {
  const cgroup = plan.cgroupDir ?? '';
  const agent = String(plan.agentPid);
  const last = [...lastStep(plan.network), 'hangar-sandbox', agent, plan.bwrap, ...bwrapArgs];
  if (!plan.user) return ['/bin/sh', '-c', USER_LAUNCHER, 'hangar-sandbox', cgroup, ...last];
  const { uid, gid } = plan.user;
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    ROOT_LAUNCHER,
    'hangar-sandbox',
    cgroup,
    plan.workdir,
    SANDBOX_MOUNTPOINT,
    String(uid),
    String(gid),
    ...last,
  ];
}

/**
 * Makes the mount point (root only): an empty directory under /run, which only root may write, so
 * nobody else can have put a link or a directory of their own there. Says what is wrong, if anything.
 */
export function ensureMountpoint(): string | undefined {
  mkdirSync(SANDBOX_MOUNTPOINT, { recursive: true, mode: 0o755 });
  const stat = lstatSync(SANDBOX_MOUNTPOINT);
  if (stat.isDirectory() && stat.uid === 0) return undefined;
  return `${SANDBOX_MOUNTPOINT} is not a directory owned by root`;
}
