import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Logger } from 'pino';
import { NETWORK_FD } from './sandbox-launch.js';
import type { JobUser } from './sandbox-user.js';

/**
 * The `outbound` network of a sandbox: a network namespace of its own (made by the launcher, see
 * sandbox-launch.ts) given a way out by slirp4netns, a user-mode TCP/IP stack that turns the
 * sandbox's packets into ordinary sockets of an unprivileged host process, as rootless Podman and
 * Docker do. The sandbox sees 10.0.2.100/24, a gateway 10.0.2.2 and a DNS forwarder 10.0.2.3.
 * `--disable-host-loopback` refuses connections to the host's 127.0.0.0/8 (10.0.2.2 included), and
 * abstract Unix sockets belong to a network namespace, so neither the host's loopback services nor
 * its abstract sockets are reachable. Services listening on the host's other addresses are, as from
 * any machine of its network.
 *
 * slirp4netns runs as the job's user (the job user, or the agent's own), joins the launcher's user
 * namespace, where that user is root, to configure the network namespace it owns, and ends at EOF
 * on its exit fd, which only the agent holds: when the attempt's launcher has exited, or the agent
 * died (also PDEATHSIG). It carries the attempt's marks, so the recovery after an agent crash finds
 * it like the sandbox's own processes (sandbox-recovery.ts).
 *
 * It parses the job's packets outside the sandbox, so a flaw in libslirp would run code as the
 * job's user on the host. It is confined: --enable-seccomp (a syscall filter) and --enable-sandbox:
 * once the network is up it becomes root of the launcher's user namespace, makes a mount namespace
 * of its own whose root is an empty read-only tmpfs with only the host's /etc and /run bound
 * read-only, and drops every capability but binding low ports. The user's home, the agent's data
 * dir, the workdir and every other file of the host are not in it; its /run is empty but for
 * resolv.conf's directory (RUN_STEP), so no Unix socket of the user's (bus, agents) either.
 * What it keeps: the host's network namespace (abstract Unix sockets, loopback) and kill(2) on
 * processes of its own user; its filter allows both (README, "Where jobs run").
 */

export const SLIRP_INSTALL_HINT =
  'install slirp4netns (apt-get install slirp4netns), or run the job with --network none (no network)';

/** The sandbox's /etc/resolv.conf: slirp4netns' DNS forwarder (the host's own may be on its loopback). */
export const SANDBOX_RESOLV_CONF = 'nameserver 10.0.2.3\n';

/** slirp4netns' largest MTU: fewer, larger packets through the user-mode stack (its docs' advice). */
const MTU = 65520;
const EXIT_FD = 3;
const READY_FD = 4;
/** How long slirp4netns gets to go after its exit fd closes before it is killed. */
const END_GRACE_MS = 5_000;

export interface OutboundNetworkOptions {
  /** The attempt's launcher, spawned with a socket at NETWORK_FD. */
  launcher: ChildProcess;
  slirp4netns: string;
  /** The job user when the agent is root; undefined: slirp4netns runs as the agent's user. */
  user: JobUser | undefined;
  /** PATH and the attempt's marks. */
  env: Record<string, string>;
  logger: Logger | undefined;
  jobId: string;
  /** Appends to the attempt's log: what slirp4netns said when it failed (no /dev/net/tun, say). */
  note(text: string): void;
  /** The attempt's cgroup, if it has one: slirp4netns joins it (see slirpArgv). */
  cgroupDir?: string;
}

/** slirp4netns' open files: each is a host socket the job made it open (one per connection). */
export const SLIRP_MAX_FILES = 4096;

/**
 * Before slirp4netns: what the job's own processes get (sandbox-launch.ts). It is the job's: every
 * connection the job makes is one of its sockets and buffers on the host, outside the sandbox. So
 * it joins the attempt's cgroup (its memory counts against the job's limit), is the OOM killer's
 * first pick like the job, and may open SLIRP_MAX_FILES files (the agent's limit, which Node raises
 * to the hard one, would let a job hold tens of thousands of host sockets).
 */
const SLIRP_STEP = [
  'echo 1000 > /proc/self/oom_score_adj || exit 126',
  'if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit 126; fi',
  // Fails only where the hard limit is already lower, which then stays.
  `ulimit -n ${SLIRP_MAX_FILES} 2>/dev/null`,
  'shift',
  'exec "$@"',
].join('\n');

/**
 * Then, in the launcher's user namespace (nsenter: root there) and a mount namespace of its own
 * (unshare), slirp4netns' view of /run is made empty: its --enable-sandbox binds the host's /run as
 * it finds it, and its syscall filter lets it connect to a Unix socket there (the user's systemd
 * --user bus, whence systemd-run starts any process as the user; ssh-agent, gpg-agent, docker.sock).
 * Only the directory /etc/resolv.conf points into, when under /run (systemd-resolved's stub), comes
 * back: libslirp reads it to forward DNS. slirp4netns, already in that user namespace, then skips
 * joining it (setns fails with EINVAL, which it ignores for its network setup).
 */
const RUN_STEP = [
  // Each command here is a process per job (~1 ms of CPU): none for a resolv.conf that is a file.
  'keep=',
  'if [ -L /etc/resolv.conf ]; then keep=$(readlink -f /etc/resolv.conf); fi',
  'case "$keep" in /run/?*/*) keep=${keep%/*} ;; *) keep= ;; esac',
  'opts=nosuid,nodev,noexec,size=64k',
  'if [ -n "$keep" ]; then',
  '  mount -t tmpfs -o "$opts,mode=0700" tmpfs /tmp && mkdir /tmp/keep && mount --rbind "$keep" /tmp/keep || exit 126',
  'fi',
  'mount -t tmpfs -o "$opts,mode=0755" tmpfs /run || exit 126',
  'if [ -n "$keep" ]; then mkdir -p "$keep" && mount --move /tmp/keep "$keep" || exit 126; fi',
  'exec "$@"',
].join('\n');

/** How slirp4netns is started for the network namespace of the launcher `target` (a pid). */
export function slirpArgv(input: {
  slirp4netns: string;
  user: JobUser | undefined;
  cgroupDir: string | undefined;
  target: number;
}): string[] {
  const { user, target } = input;
  // setpriv: the job's user, no group or capability of the agent's, and dead with the agent.
  const asUser = user
    ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--inh-caps=-all']
    : ['setpriv'];
  return [
    '/bin/sh',
    '-c',
    SLIRP_STEP,
    'hangar-slirp',
    input.cgroupDir ?? '',
    ...asUser,
    '--pdeathsig',
    'KILL',
    '--',
    'nsenter',
    `--user=/proc/${target}/ns/user`,
    '--preserve-credentials',
    '--',
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    RUN_STEP,
    'hangar-slirp-run',
    input.slirp4netns,
    '--configure',
    `--mtu=${MTU}`,
    '--disable-host-loopback',
    // It parses the job's packets: a syscall filter, and a mount namespace with no host file but
    // /etc and /run (it needs uid and gid 0 mapped in the launcher's user namespace: lastStep).
    '--enable-seccomp',
    '--enable-sandbox',
    `--exit-fd=${EXIT_FD}`,
    `--ready-fd=${READY_FD}`,
    `--userns-path=/proc/${target}/ns/user`,
    String(target),
    'tap0',
  ];
}

/** Brings up the launcher's network namespace once it says it is made; `ended` once slirp4netns has gone. */
export class OutboundNetwork {
  readonly ended: Promise<void>;
  private slirp: ChildProcess | undefined;
  private finished = false;
  private resolveEnded!: () => void;

  constructor(private readonly options: OutboundNetworkOptions) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    const handshake = this.handshake();
    handshake.on('error', (error) => options.logger?.warn({ err: error, job: options.jobId }, 'network handshake'));
    let said = '';
    handshake.on('data', (chunk: Buffer) => {
      said += chunk.toString('utf8');
      if (this.slirp || this.finished || !said.includes('netns\n')) return;
      this.startSlirp(options.launcher.pid!);
    });
    options.launcher.once('exit', () => this.end());
  }

  /** Ends slirp4netns (the attempt is over); safe to call more than once. */
  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.handshake().destroy();
    const slirp = this.slirp;
    if (!slirp || slirp.exitCode !== null || slirp.signalCode !== null) {
      this.resolveEnded();
      return;
    }
    (slirp.stdio[EXIT_FD] as NodeJS.ReadableStream & { destroy(): void }).destroy();
    const kill = setTimeout(() => slirp.kill('SIGKILL'), END_GRACE_MS);
    kill.unref();
  }

  private handshake(): NodeJS.ReadWriteStream & { destroy(): void } {
    return (this.options.launcher.stdio as readonly unknown[])[NETWORK_FD] as NodeJS.ReadWriteStream & {
      destroy(): void;
    };
  }

  private startSlirp(target: number): void {
    const { cgroupDir, slirp4netns, user } = this.options;
    const argv = slirpArgv({ slirp4netns, user, cgroupDir, target });
    const stdio: StdioOptions = ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'];
    const slirp = spawn(argv[0]!, argv.slice(1), { stdio, env: this.options.env });
    this.slirp = slirp;
    let stderr = '';
    slirp.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
    let ready = false;
    const readyPipe = slirp.stdio[READY_FD] as NodeJS.ReadableStream;
    readyPipe.on('error', () => undefined);
    readyPipe.once('data', () => {
      ready = true;
      // The launcher runs bwrap only on this word; without it (EOF) it fails the attempt.
      this.handshake().end('up\n');
    });
    (slirp.stdio[EXIT_FD] as NodeJS.WritableStream).on('error', () => undefined);
    const failed = (why: string) => {
      if (ready || this.finished) return;
      this.options.logger?.warn({ job: this.options.jobId, stderr: stderr.trim() }, `slirp4netns ${why}`);
      this.options.note(`hangar: slirp4netns ${why}: ${stderr.trim().split('\n').slice(-3).join(' / ')}\n`);
      this.handshake().destroy();
    };
    slirp.on('error', (error) => {
      failed(`could not start: ${error.message}`);
      this.resolveEnded();
    });
    slirp.on('close', (code, signal) => {
      failed(`exited before the network was up (${signal ?? code})`);
      this.resolveEnded();
    });
  }
}
