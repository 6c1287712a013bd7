import { AGENT_ENV, AGENT_NODE_FLAGS, tmuxSocketNameOf } from '@hangar/shared';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CREATE_JOB_USER } from '../jobs/executors/sandbox-user.js';
import { tmuxSocketName } from '../sessions/tmux.js';
import { renderLaunchdPlist } from './launchd-plist.js';
import {
  currentLink,
  recordFile,
  InstallRecordSchema,
  type InstallEnvironment,
  type InstallLayout,
  type InstallRecord,
} from './layout.js';
import type { Step } from './plan.js';
import { serviceControl } from './service-control.js';
import { renderSystemdUnit, renderTmuxUnit, TMUX_UNIT, type ServiceCommand } from './systemd-unit.js';

export interface InstallInputs {
  environment: InstallEnvironment;
  layout: InstallLayout;
  listen: string;
  node: string;
  /** The package directory being installed (this agent's own) and its version. */
  packageRoot: string;
  version: string;
  /**
   * Set when an install already runs another version (updated since this package was installed):
   * reinstalling, to change --listen say, keeps that version rather than going back to this one.
   */
  keepVersion?: string;
  /** tmux's absolute path, for the tmux unit (systemd wants absolute programs). */
  tmux: string;
  channel: string;
  registry?: string;
  /** install --token: the relay and token id the line names (the secrets stay with the installer). */
  enroll?: { relay: string; tokenId: string };
  now: number;
}

/** The user that runs jobs when the agent is root (jobs/executors/sandbox-user.ts), made with it. */
const JOB_USER = 'hangar-job';

/** Everything `hangar-agent install` does, in order, as steps that --dry-run prints and install applies. */
export function planInstall(inputs: InstallInputs): Step[] {
  const { layout, environment } = inputs;
  const steps: Step[] = [];
  const linuxSystem = layout.platform === 'linux' && layout.mode === 'system';
  if (linuxSystem) steps.push(...userSteps(inputs));
  steps.push({
    kind: 'mkdir',
    path: layout.dataDir,
    mode: 0o700,
    ...(linuxSystem ? { owner: layout.serviceUser } : {}),
    why: "the agent's keys, database and session logs, private to it",
  });
  if (inputs.enroll) {
    // Before anything else is installed: a token the relay refuses leaves no service behind, and
    // the agent starts enrolled, so it goes online at its first start.
    steps.push({
      kind: 'enroll',
      dataDir: layout.dataDir,
      relay: inputs.enroll.relay,
      tokenId: inputs.enroll.tokenId,
      ...(linuxSystem ? { user: layout.serviceUser } : {}),
      why:
        "registers this host's public key and TLS certificate with the relay (hangar-agent enroll; " +
        'keys and database made as the agent’s user)',
    });
  }
  steps.push({
    kind: 'mkdir',
    path: join(layout.home, 'versions'),
    mode: 0o755,
    why: 'versions live side by side here',
  });
  if (inputs.keepVersion === undefined) {
    const target = join(layout.home, 'versions', inputs.version);
    if (!sameDirectory(inputs.packageRoot, target)) {
      steps.push({
        kind: 'copy',
        from: inputs.packageRoot,
        to: target,
        why: `hangar-agent ${inputs.version}, as npm installed it`,
      });
    }
    steps.push({
      kind: 'link',
      path: currentLink(layout),
      target: join('versions', inputs.version),
      why: 'the service runs whatever this points at; updates switch it',
    });
  }
  const command: ServiceCommand = {
    argv: [
      inputs.node,
      ...AGENT_NODE_FLAGS,
      join(currentLink(layout), 'bin', 'hangar-agent.js'),
      'serve',
      '--data',
      layout.dataDir,
      '--listen',
      inputs.listen,
    ],
    env: { ...AGENT_ENV },
  };
  if (layout.platform === 'linux') {
    steps.push({
      kind: 'write',
      path: join(dirname(layout.serviceFile), TMUX_UNIT),
      content: renderTmuxUnit({
        mode: layout.mode,
        user: layout.serviceUser,
        tmux: inputs.tmux,
        socketName: futureTmuxSocket(layout.dataDir),
        configFile: join(layout.dataDir, 'sessions', 'tmux.conf'),
      }),
      mode: 0o644,
      why: 'the tmux server of the terminals, in a unit of its own so agent restarts never end a terminal',
    });
    steps.push({
      kind: 'write',
      path: layout.serviceFile,
      content: renderSystemdUnit({
        mode: layout.mode,
        command,
        user: layout.serviceUser,
        workingDirectory: layout.dataDir,
      }),
      mode: 0o644,
      why: 'the agent service',
    });
  } else {
    steps.push({ kind: 'mkdir', path: dirname(layout.logFile!), mode: 0o755, why: "the agent's log" });
    steps.push({
      kind: 'write',
      path: layout.serviceFile,
      content: renderLaunchdPlist({
        mode: layout.mode,
        command,
        logFile: layout.logFile!,
        workingDirectory: environment.home,
        user: layout.serviceUser,
      }),
      mode: 0o644,
      why: `the launchd ${layout.mode === 'system' ? 'daemon' : 'agent'}`,
    });
  }
  const record: InstallRecord = InstallRecordSchema.parse({
    schema_version: 1,
    platform: layout.platform,
    mode: layout.mode,
    home: layout.home,
    data_dir: layout.dataDir,
    listen: inputs.listen,
    service_file: layout.serviceFile,
    service_user: layout.serviceUser,
    ...(layout.logFile ? { log_file: layout.logFile } : {}),
    node: inputs.node,
    channel: inputs.channel,
    ...(inputs.registry ? { registry: inputs.registry } : {}),
    installed_at: inputs.now,
  });
  steps.push({
    kind: 'write',
    path: recordFile(layout),
    content: JSON.stringify(record, null, 2) + '\n',
    mode: 0o644,
    why: 'what was installed, for status, logs, update and uninstall',
  });
  if (layout.platform === 'linux' && layout.mode === 'user') {
    steps.push({
      kind: 'run',
      argv: ['loginctl', 'enable-linger', environment.user],
      why: 'keep your user services (the agent) running after you log out and start them at boot',
    });
  }
  steps.push(...serviceControl(layout, environment.uid).startSteps());
  return steps;
}

/** The service account and the sandbox's job account, each only if the passwd file lacks it. */
function userSteps(inputs: InstallInputs): Step[] {
  const { prefix } = inputs.environment;
  const prefixArgs = prefix ? ['--prefix', prefix] : [];
  const existing = passwdNames(join(prefix || '/', 'etc', 'passwd'));
  const steps: Step[] = [];
  const user = inputs.layout.serviceUser;
  if (!existing.has(user)) {
    // A real login shell and a home of its own: the terminals the app opens are this user's shells.
    const shell = existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh';
    steps.push({
      kind: 'run',
      argv: [
        'useradd',
        ...prefixArgs,
        '--system',
        '--user-group',
        '--create-home',
        '--home-dir',
        `/home/${user}`,
        '--shell',
        shell,
        user,
      ],
      why: `the account the agent and its terminals run as (no password: it cannot log in)`,
    });
  }
  if (!existing.has(JOB_USER)) {
    const [program, ...args] = CREATE_JOB_USER.split(' ');
    steps.push({
      kind: 'run',
      argv: [program!, ...prefixArgs, ...args],
      why: 'the account sandboxed jobs run as when the agent runs as root (no home, no shell)',
    });
  }
  return steps;
}

export function passwdNames(file: string): Set<string> {
  if (!existsSync(file)) return new Set();
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.split(':')[0]!)
      .filter(Boolean),
  );
}

export function passwdEntry(file: string, name: string): { uid: number; gid: number; home: string } | undefined {
  for (const line of existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []) {
    const [entry, , uid, gid, , home] = line.split(':');
    if (entry === name && uid && gid) return { uid: Number(uid), gid: Number(gid), home: home || '/' };
  }
  return undefined;
}

/**
 * What undoes the steps an install took before its enroll step (the relay refused the token):
 * the accounts it made and the data dir, if it made that too. Nothing else comes before it.
 */
export function planUndoBeforeEnroll(
  steps: readonly Step[],
  environment: InstallEnvironment,
  dataDirExisted: boolean,
): Step[] {
  const prefixArgs = environment.prefix ? ['--prefix', environment.prefix] : [];
  const undo: Step[] = [];
  for (const step of steps) {
    if (step.kind === 'enroll') break;
    if (step.kind === 'run' && step.argv[0] === 'useradd') {
      const user = step.argv.at(-1)!;
      undo.unshift({
        kind: 'run',
        argv: ['userdel', ...prefixArgs, ...(step.argv.includes('--create-home') ? ['--remove'] : []), user],
        why: `the ${user} account this install had just made`,
        mayFail: true,
      });
    } else if (step.kind === 'mkdir' && !dataDirExisted) {
      undo.unshift({ kind: 'remove', path: step.path, why: 'the data dir this install had just made' });
    }
  }
  return undo;
}

/**
 * The socket name the agent will use for its data dir, which may not exist yet: tmuxSocketName
 * hashes the real path, which is the real path of the nearest existing parent plus the rest.
 */
function futureTmuxSocket(dataDir: string): string {
  if (existsSync(dataDir)) return tmuxSocketName(dataDir);
  const rest: string[] = [];
  let existing = dataDir;
  while (!existsSync(existing) && dirname(existing) !== existing) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  const future = join(realpathSync(existing), ...rest);
  return tmuxSocketNameOf(future);
}

function sameDirectory(a: string, b: string): boolean {
  return existsSync(b) && realpathSync(a) === realpathSync(b);
}
