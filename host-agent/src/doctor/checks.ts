import { jsonOrUndefined } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { SandboxExecutor } from '../jobs/executors/sandbox.js';
import { CREATE_JOB_USER } from '../jobs/executors/sandbox-user.js';
import { TART_INSTALL_HINT } from '../jobs/executors/tart-cli.js';
import { RESTIC_INSTALL } from '../backups/restic.js';

/** What `tart list --format json` prints: the VMs on this Mac (only the fields read here). */
const TartList = z.array(z.object({ Name: z.string(), Running: z.boolean() }));

export type CheckStatus = 'ok' | 'fail' | 'warn' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found (a version, a count). */
  detail: string;
  /** What to run or change when the status is not ok. */
  fix?: string;
}

/** Runs a program and gives its output; injectable so tests can stand in for a missing tool. */
export type CommandRunner = (file: string, args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface DoctorOptions {
  platform?: NodeJS.Platform;
  dataDir?: string;
  tartBinary?: string;
  /** The base image the tart executor clones. */
  tartImage?: string;
  /** The bubblewrap binary to check (default: bwrap on PATH). */
  bwrapPath?: string;
  /** The slirp4netns binary to check (default: slirp4netns on PATH). */
  slirp4netnsPath?: string;
  /** The restic binary the agent is given (`serve --restic`; default: restic on PATH). */
  resticPath?: string;
  run?: CommandRunner;
  /** Free bytes on the volume holding the VMs; injectable for tests. */
  freeBytes?: (path: string) => Promise<number>;
}

export const MIN_TMUX = [3, 2] as const;
/** macOS 14 for `tart exec` (Exec.swift refuses older hosts); 13 would do for `--dir` alone. */
export const MIN_MACOS = 14;
/** Tart's FAQ: the default lease is 86,400 s, so >~253 VMs a day exhaust the 192.168.64.0/24 pool. */
export const MAX_LEASE_SECONDS = 3600;
export const MIN_FREE_GB = 20;
const LEASE_FIX =
  'sudo defaults write /Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist bootpd -dict DHCPLeaseTimeSecs -int 600';

export const runCommand: CommandRunner = (file, args) =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && code === -1 ? error.message : '') });
    });
  });

export async function checkTmux(run: CommandRunner): Promise<CheckResult> {
  const name = 'tmux ≥ 3.2';
  const result = await run('tmux', ['-V']);
  const install = 'install tmux 3.2 or newer (apt-get install tmux, or brew install tmux)';
  if (result.code !== 0) return { name, status: 'fail', detail: 'tmux is not installed', fix: install };
  const match = /tmux (?:next-)?(\d+)\.(\d+)/.exec(result.stdout);
  if (!match) return { name, status: 'warn', detail: `unrecognised version: ${result.stdout.trim()}`, fix: install };
  const [major, minor] = [Number(match[1]), Number(match[2])];
  const ok = major > MIN_TMUX[0] || (major === MIN_TMUX[0] && minor >= MIN_TMUX[1]);
  return ok
    ? { name, status: 'ok', detail: result.stdout.trim() }
    : { name, status: 'fail', detail: `${result.stdout.trim()} is too old`, fix: install };
}

export const MIN_RESTIC = [0, 14] as const;

/**
 * restic, for backups (`hangar backup`): a warning, not a failure, since a host that backs nothing
 * up needs none. Said here so a host is ready before the first `backup set` finds out.
 */
export async function checkRestic(run: CommandRunner, bin = 'restic'): Promise<CheckResult> {
  const name = 'restic ≥ 0.14 (backups)';
  const result = await run(bin, ['version']);
  if (result.code !== 0)
    return { name, status: 'warn', detail: `${bin} is not installed: hangar backup needs it`, fix: RESTIC_INSTALL };
  const match = /restic (\d+)\.(\d+)\S*/.exec(result.stdout);
  if (!match)
    return { name, status: 'warn', detail: `unrecognised version: ${result.stdout.trim()}`, fix: RESTIC_INSTALL };
  const [major, minor] = [Number(match[1]), Number(match[2])];
  const ok = major > MIN_RESTIC[0] || (major === MIN_RESTIC[0] && minor >= MIN_RESTIC[1]);
  return ok
    ? { name, status: 'ok', detail: match[0] }
    : { name, status: 'warn', detail: `${match[0]} is too old for hangar backup`, fix: RESTIC_INSTALL };
}

/**
 * The sandbox: whether a job's sandbox can be made here (by making one), how limits apply, and who
 * jobs run as. A host that refuses user namespaces fails with the sysctl to change.
 */
export async function checkSandbox(
  dataDir: string,
  bwrapPath?: string,
  slirp4netnsPath?: string,
): Promise<CheckResult[]> {
  const executor = new SandboxExecutor({
    dataDir,
    ...(bwrapPath ? { bwrapPath } : {}),
    ...(slirp4netnsPath ? { slirp4netnsPath } : {}),
  });
  const problem = await executor.check();
  if (problem) return [{ name: 'bubblewrap sandbox', status: 'fail', detail: problem.problem, fix: problem.fix }];
  const user = executor.jobUser;
  const results: CheckResult[] = [
    {
      name: 'bubblewrap sandbox',
      status: 'ok',
      detail: `jobs run in a user namespace with no capabilities; ${executor.limitNote}`,
    },
  ];
  results.push(await checkSandboxNetwork(executor));
  if (!user) {
    results.push(agentUserCheck());
  } else if (user.name === 'nobody') {
    results.push({
      name: 'sandbox user',
      status: 'warn',
      detail: `jobs run as nobody (uid ${user.uid}), which other services may share`,
      fix: CREATE_JOB_USER,
    });
  } else {
    results.push({ name: 'sandbox user', status: 'ok', detail: `jobs run as ${user.name} (uid ${user.uid})` });
  }
  return results;
}

/**
 * A job of an agent that is not root runs as the agent's user, and keeps that user's supplementary
 * groups: an unprivileged process cannot drop them (setgroups needs CAP_SETGID, which a user
 * namespace made without privilege grants only with setgroups denied), so the job and its
 * slirp4netns can open what those groups may (a `docker` group's socket, an `adm` group's logs).
 * Shown in its user namespace as nogroup, they still count on the host's files. A root agent
 * clears them (setpriv --clear-groups) for both.
 */
export function agentUserCheck(
  groups: readonly number[] = process.getgroups?.() ?? [],
  gid: number = process.getgid?.() ?? 0,
): CheckResult {
  const name = 'sandbox user';
  const extra = [...new Set(groups.filter((group) => group !== gid))];
  if (extra.length === 0) return { name, status: 'ok', detail: 'jobs run as the agent’s own (unprivileged) user' };
  return {
    name,
    status: 'warn',
    detail:
      `jobs run as the agent’s own user and keep its supplementary groups (gid ${extra.join(', ')}): ` +
      'an unprivileged agent cannot drop them, so a job can open what those groups may',
    fix: `run the agent as root (jobs then run as hangar-job, in no group of yours: ${CREATE_JOB_USER}), or as a user in no other group`,
  };
}

/**
 * The default (outbound) network: slirp4netns installed, and a job that uses it runs (slirp4netns
 * also needs /dev/net/tun, which a container may lack).
 */
async function checkSandboxNetwork(executor: SandboxExecutor): Promise<CheckResult> {
  const name = 'sandbox network';
  const outbound = executor.outboundProblem();
  if (outbound)
    return { name, status: 'fail', detail: `${outbound.problem} (--network none still runs)`, fix: outbound.fix };
  const said = await runOutboundProbe(executor);
  if (said !== undefined) {
    return {
      name,
      status: 'fail',
      detail: `a job with the default (outbound) network could not start: ${said}`,
      fix: 'slirp4netns needs /dev/net/tun (in a container: --device /dev/net/tun); or run jobs with --network none',
    };
  }
  return { name, status: 'ok', detail: 'jobs get outbound networking through slirp4netns, not the host’s loopback' };
}

/** Runs `true` in a sandbox with the outbound network; what it printed if it failed, else undefined. */
async function runOutboundProbe(executor: SandboxExecutor): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-doctor-network-'));
  const workdir = join(dir, 'work');
  const log = join(dir, 'log');
  await mkdir(workdir);
  const fd = openSync(log, 'a');
  try {
    const execution = await executor.start({
      jobId: 'doctor',
      attempt: 1,
      command: 'true',
      env: {},
      workdir,
      network: 'outbound',
      limits: {},
      output: { fd, write: (chunk) => appendFileSync(fd, chunk) },
      timing: () => undefined,
      checkpoint: () => undefined,
    });
    const result = await execution.done;
    if (result.exitCode === 0) return undefined;
    return readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' / ') || `exit ${result.exitCode}`;
  } finally {
    closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  }
}

export async function macosChecks(options: Required<Pick<DoctorOptions, 'run' | 'freeBytes'>> & DoctorOptions) {
  const { run } = options;
  const tart = options.tartBinary ?? 'tart';
  const results: CheckResult[] = [];
  const sw = await run('sw_vers', ['-productVersion']);
  const major = Number(sw.stdout.trim().split('.')[0]);
  results.push(
    major >= MIN_MACOS
      ? { name: 'macOS version', status: 'ok', detail: sw.stdout.trim() }
      : {
          name: 'macOS version',
          status: 'fail',
          detail: `macOS ${sw.stdout.trim() || 'unknown'}: \`tart exec\` needs macOS ${MIN_MACOS} (Sonoma) or newer`,
          fix: 'upgrade macOS in System Settings → General → Software Update',
        },
  );
  const version = await run(tart, ['--version']);
  if (version.code !== 0) {
    results.push({ name: 'Tart', status: 'fail', detail: 'tart is not installed', fix: TART_INSTALL_HINT });
    return results;
  }
  results.push({ name: 'Tart', status: 'ok', detail: `tart ${version.stdout.trim()}` });
  const list = await run(tart, ['list', '--format', 'json']);
  const listed = list.code === 0 ? TartList.safeParse(jsonOrUndefined(list.stdout)) : undefined;
  if (listed && !listed.success) {
    results.push({
      name: 'Tart',
      status: 'fail',
      detail: `tart list --format json printed what this agent cannot read (${list.stdout.trim().slice(0, 80)})`,
      fix: 'update Tart (brew upgrade cirruslabs/cli/tart), or the agent to one that knows its output',
    });
    return results;
  }
  const vms = listed?.data ?? [];
  if (options.tartImage) {
    const present = vms.some((vm) => vm.Name === options.tartImage);
    results.push(
      present
        ? { name: 'base image', status: 'ok', detail: options.tartImage }
        : {
            name: 'base image',
            status: 'fail',
            detail: `${options.tartImage} is not on this Mac`,
            fix: `tart pull ${options.tartImage}`,
          },
    );
  }
  const running = vms.filter((vm) => vm.Running);
  const probe = running.find((vm) => vm.Name.startsWith('hangar-'));
  if (probe) {
    const exec = await run(tart, ['exec', probe.Name, '/usr/bin/true']);
    results.push(
      exec.code === 0
        ? { name: 'guest agent', status: 'ok', detail: `tart exec works in ${probe.Name}` }
        : {
            name: 'guest agent',
            status: 'fail',
            detail: `tart exec failed in ${probe.Name}: ${exec.stderr.trim()}`,
            fix:
              'use a Cirrus Labs image (they ship the Tart guest agent) or install tart-guest-agent in yours; ' +
              "or let jobs use the SSH fallback (the tart executor's guestAccess 'auto', the default, or 'ssh'): " +
              "bake the agent's key into the image once (ssh-copy-id -i <data>/tart/id_ed25519.pub admin@$(tart ip <vm>), password admin) " +
              'since SSH runs with BatchMode and cannot type a password',
          },
    );
  } else {
    results.push({
      name: 'guest agent',
      status: 'warn',
      detail: 'not verified: no hangar VM is running to try `tart exec` in',
      fix: 'run a job with --executor tart, then run doctor again',
    });
  }
  const lease = await run('defaults', [
    'read',
    '/Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist',
    'bootpd',
  ]);
  const seconds = Number(/DHCPLeaseTimeSecs\s*=\s*(\d+)/.exec(lease.stdout)?.[1] ?? 86_400);
  results.push(
    seconds <= MAX_LEASE_SECONDS
      ? { name: 'DHCP lease time', status: 'ok', detail: `${seconds} s` }
      : {
          name: 'DHCP lease time',
          status: 'fail',
          detail: `${seconds} s: after ~253 VMs in that time new VMs get no IP address`,
          fix: LEASE_FIX,
        },
  );
  const free = await options.freeBytes(process.env['TART_HOME'] ?? homedir());
  const gb = Math.floor(free / 1024 ** 3);
  results.push(
    gb >= MIN_FREE_GB
      ? { name: 'free disk space', status: 'ok', detail: `${gb} GB free` }
      : {
          name: 'free disk space',
          status: 'warn',
          detail: `${gb} GB free; a clone grows as the job writes`,
          fix: 'free space, or run: tart prune --older-than=7',
        },
  );
  const others = running.filter((vm) => !vm.Name.startsWith('hangar-')).map((vm) => vm.Name);
  results.push(
    others.length === 0
      ? { name: '2-VM limit', status: 'ok', detail: `${running.length} running, all Hangar's` }
      : {
          name: '2-VM limit',
          status: 'warn',
          detail: `other VMs take Apple's 2-VM allowance: ${others.join(', ')}`,
          fix: `tart stop ${others[0]}`,
        },
  );
  return results;
}

export async function freeBytesAt(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}
