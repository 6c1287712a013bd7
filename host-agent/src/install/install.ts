import { HangarError, parseHostAddress, toHangarError } from '@hangar/shared';
import { existsSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHealthy } from '../update/health.js';
import { linkedVersion, readPackageManifest } from '../update/versions.js';
import { serviceGaveUp } from '../update/update.js';
import { serviceControl } from './service-control.js';
import {
  describeRelay,
  describeToken,
  enrollAsAgent,
  onlineOnRelay,
  relayPresence,
  type Enrolled,
} from './enrollment.js';
import { passwdEntry, planInstall, planUndoBeforeEnroll } from './install-plan.js';
import {
  currentEnvironment,
  defaultMode,
  currentLink,
  describeService,
  DEFAULT_LISTEN,
  resolveLayout,
  type InstallEnvironment,
  type InstallLayout,
  type InstallMode,
  versionsDir,
} from './layout.js';
import { applyPlan, describePlan, runProgram, type Runner } from './plan.js';
import { checkPrerequisites, failedPrerequisites, formatChecks } from './prerequisites.js';

export interface InstallOptions {
  mode?: InstallMode;
  data?: string;
  listen?: string;
  token?: string;
  /** What the relay account calls this host (with --token); default: the machine's host name. */
  name?: string;
  dryRun?: boolean;
  withoutSandbox?: boolean;
  tart?: boolean;
  node?: string;
  channel?: string;
  registry?: string;
}

export interface CommandContext {
  environment?: InstallEnvironment;
  run?: Runner;
  out?: (text: string) => void;
  /** The package being installed; default: the one this code runs from. */
  packageRoot?: string;
}

/** First start makes keys and a TLS certificate; a small VPS under load needs more than the update's 30 s. */
const FIRST_START_TIMEOUT_MS = 60_000;

export async function runInstall(options: InstallOptions, context: CommandContext = {}): Promise<InstallLayout> {
  const out = context.out ?? ((text: string) => process.stdout.write(text));
  const run = context.run ?? runProgram;
  // A damaged line is refused before anything is looked at or changed.
  const token = options.token !== undefined ? describeToken(options.token) : undefined;
  if (options.name !== undefined && token === undefined) {
    throw new HangarError('E_BAD_REQUEST', '--name names the host on a relay: it goes with --token');
  }
  const listen = options.listen ?? DEFAULT_LISTEN;
  if (!parseHostAddress(listen, { allowAnyPort: false })) {
    throw new HangarError('E_BAD_REQUEST', `--listen ${listen}: expected host:port, e.g. 0.0.0.0:7070`);
  }
  const environment = context.environment ?? currentEnvironment();
  const mode = options.mode ?? defaultMode(environment);
  if (mode === 'system' && environment.uid !== 0 && !environment.prefix && !options.dryRun) {
    throw new HangarError('E_BAD_REQUEST', 'a system install needs root: run it with sudo, or install with --user');
  }
  const layout = resolveLayout(environment, mode, options.data ? { dataDir: resolve(options.data) } : {});
  const checks = await checkPrerequisites({
    platform: environment.platform,
    run,
    ...(options.withoutSandbox ? { withoutSandbox: true } : {}),
    ...(options.tart ? { tart: true } : {}),
  });
  out(`Checking this machine:\n${formatChecks(checks)}\n`);
  const missing = failedPrerequisites(checks);
  if (missing && !options.dryRun) throw missing;

  const packageRoot = context.packageRoot ?? ownPackageRoot();
  const manifest = readPackageManifest(packageRoot);
  if (manifest.name !== 'hangar-agent' && !options.dryRun) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `hangar-agent install runs from the published package, not from a source checkout (${packageRoot} is ${manifest.name}). ` +
        'Install it first: npm install -g hangar-agent (from a checkout: npm run pack:agent && npm install -g dist-agent/hangar-agent-*.tgz)',
    );
  }

  const installed = linkedVersion(currentLink(layout));
  const keepVersion =
    installed && installed !== manifest.version && existsSync(join(versionsDir(layout), installed, 'package.json'))
      ? installed
      : undefined;
  const version = keepVersion ?? manifest.version;
  if (keepVersion)
    out(`hangar-agent ${keepVersion} is installed (this command is ${manifest.version}); keeping ${keepVersion}.\n`);
  const node = resolve(options.node ?? process.execPath);
  const linuxSystem = mode === 'system' && environment.platform === 'linux';
  if (linuxSystem) assertOpenToServiceUser(node, layout.serviceUser);
  // enroll runs as the service user from the package being installed.
  if (linuxSystem && token) assertOpenToServiceUser(join(packageRoot, 'bin', 'hangar-agent.js'), layout.serviceUser);
  const steps = planInstall({
    environment,
    layout,
    listen,
    node,
    packageRoot,
    version: manifest.version,
    ...(keepVersion ? { keepVersion } : {}),
    tmux: findOnPath('tmux') ?? '/usr/bin/tmux',
    channel: options.channel ?? 'stable',
    ...(options.registry ? { registry: options.registry } : {}),
    ...(token ? { enroll: token } : {}),
    now: Date.now(),
  });
  if (options.dryRun) {
    out(
      `Dry run: hangar-agent ${version} as a ${describeService(layout)}. ` +
        `These are the steps it would take; nothing was changed.\n${describePlan(steps)}`,
    );
    if (missing) out(`A real install would stop before step 1: ${missing.message}\n`);
    if (token) {
      // Read-only (relay.info): the token is single use, so a dry run never presents it.
      out(`${await describeRelay(token.relay)}; the token was not used (a dry run never sends it).\n`);
    }
    return layout;
  }
  const dataDirExisted = existsSync(layout.dataDir);
  const wasOnline = dataDirExisted && onlineOnRelay(layout.dataDir);
  out(`Installing hangar-agent ${version} as a ${describeService(layout)}:\n`);
  const passwd = join(environment.prefix || '/', 'etc', 'passwd');
  let enrolled: Enrolled | undefined;
  await applyPlan(steps, {
    run,
    log: (line) => out(`${line}\n`),
    resolveOwner: (name) => {
      const entry = passwdEntry(passwd, name);
      if (!entry) throw new HangarError('E_NOT_FOUND', `user ${name} does not exist after useradd`);
      return entry;
    },
    enroll: async (step) => {
      const user = step.user === undefined ? undefined : passwdEntry(passwd, step.user);
      if (step.user !== undefined && user === undefined) {
        throw new HangarError('E_NOT_FOUND', `user ${step.user} does not exist after useradd`);
      }
      try {
        enrolled = await enrollAsAgent({
          node,
          packageRoot,
          dataDir: step.dataDir,
          token: options.token!,
          ...(options.name ? { name: options.name } : {}),
          ...(user ? { user } : {}),
        });
      } catch (error) {
        const refused = toHangarError(error);
        const undo = planUndoBeforeEnroll(steps, environment, dataDirExisted);
        await applyPlan(undo, {
          run,
          log: (line) => out(`${line}\n`),
          resolveOwner: () => {
            throw new HangarError('E_INTERNAL', 'undoing an install changes no owner');
          },
        });
        throw new HangarError(
          refused.code,
          `${refused.message}. Nothing was installed${undo.length > 0 ? ' (what this install had made is removed again)' : ''}.`,
          refused.details,
        );
      }
      out(`  enrolled as "${enrolled.name}" (${enrolled.host_id}) on ${enrolled.relay_url}\n`);
    },
  });
  const control = serviceControl(layout, environment.uid);
  const healthy = await waitForHealthy({
    dataDir: layout.dataDir,
    version,
    timeoutMs: FIRST_START_TIMEOUT_MS,
    serviceGaveUp: () => serviceGaveUp(control, run),
    // Enrolled now (or online before this reinstall): done means online on the relay too.
    ...(enrolled || wasOnline ? { relayPresence: (pid: number) => relayPresence(layout.dataDir, pid) } : {}),
  }).catch((error: unknown) => {
    const failure = toHangarError(error);
    if (!enrolled) throw failure;
    throw new HangarError(
      failure.code,
      `hangar-agent is installed and enrolled on ${enrolled.relay_url}, but ${failure.message}. ` +
        'The service keeps trying; see hangar-agent status and hangar-agent logs',
    );
  });
  out(
    `\nhangar-agent ${version} is running (pid ${healthy.run.pid}), listening on ${healthy.run.address}` +
      `${healthy.relay ? `, ${healthy.relay}` : ''}.\n` +
      `Data: ${layout.dataDir}. Status: hangar-agent status. Logs: hangar-agent logs -f.\n`,
  );
  if (enrolled) {
    out(
      `This host is "${enrolled.name}" (${enrolled.host_id}) in your account: the app's host list shows it online. ` +
        'The computer that made the token pairs with it at its first connection, until ' +
        `${new Date(enrolled.first_link_expires_at).toLocaleString()}.\n`,
    );
    if (isLoopback(listen)) {
      // Until the WebRTC link, devices dial the addresses the host publishes: loopback reaches no one else.
      out(
        `It listens on ${listen}, so only this machine can reach it; to be reached on your LAN or tailnet, ` +
          'install again with --listen 0.0.0.0:7070 (no new token needed).\n',
      );
    }
  } else {
    out(
      `To pair the app with it, run on this host:\n  ${pairCommand(layout)}\n` +
        'and on your computer the `hangar hosts add` line it prints; or enroll it in your account with ' +
        '`hangar-agent install --token hgr1_…` (the line `hangar hosts enroll-token` prints).\n',
    );
  }
  return layout;
}

function isLoopback(listen: string): boolean {
  const host = parseHostAddress(listen, { allowAnyPort: false })?.host ?? '';
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export function pairCommand(layout: InstallLayout): string {
  const pair = `hangar-agent pair --data ${layout.dataDir}`;
  // The database belongs to the service user: run as root, pair would leave root-owned files in it.
  return layout.platform === 'linux' && layout.mode === 'system' ? `sudo -u ${layout.serviceUser} ${pair}` : pair;
}

/** The directory of the package this code was loaded from (bundle: dist/cli.js; workspace: dist/install/…). */
export function ownPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new HangarError('E_INTERNAL', 'cannot find the package hangar-agent runs from');
    dir = dirname(dir);
  }
  return dir;
}

export function findOnPath(program: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, program))) return join(dir, program);
  }
  return undefined;
}

/** The service user must be able to reach Node: one under /root or a 0700 home would fail every start. */
function assertOpenToServiceUser(node: string, user: string): void {
  for (let dir = dirname(node); dirname(dir) !== dir; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `the service user ${user} cannot run ${node}: ${dir} is closed to other users. ` +
          'Install Node system-wide (your distribution’s nodejs 20+, or NodeSource) and pass --node /usr/bin/node',
      );
    }
  }
}
