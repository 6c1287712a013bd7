import { HangarError, parseHostAddress } from '@hangar/shared';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHealthy } from '../update/health.js';
import { linkedVersion } from '../update/versions.js';
import { serviceGaveUp } from '../update/update.js';
import { serviceControl } from './service-control.js';
import { enrollment, refuseTokenWithoutEnrollment } from './enrollment.js';
import { passwdEntry, planInstall } from './install-plan.js';
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
  // Refused before anything is looked at or changed: a host that never shows up is worse than an error.
  refuseTokenWithoutEnrollment(options.token);
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
  const manifest = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
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
  if (mode === 'system' && environment.platform === 'linux') assertOpenToServiceUser(node, layout.serviceUser);
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
    now: Date.now(),
  });
  if (options.dryRun) {
    out(
      `Dry run: hangar-agent ${version} as a ${describeService(layout)}. ` +
        `These are the steps it would take; nothing was changed.\n${describePlan(steps)}`,
    );
    if (missing) out(`A real install would stop before step 1: ${missing.message}\n`);
    return layout;
  }
  out(`Installing hangar-agent ${version} as a ${describeService(layout)}:\n`);
  await applyPlan(steps, {
    run,
    log: (line) => out(`${line}\n`),
    resolveOwner: (name) => {
      const entry = passwdEntry(join(environment.prefix || '/', 'etc', 'passwd'), name);
      if (!entry) throw new HangarError('E_NOT_FOUND', `user ${name} does not exist after useradd`);
      return entry;
    },
  });
  const control = serviceControl(layout, environment.uid);
  const healthy = await waitForHealthy({
    dataDir: layout.dataDir,
    version,
    timeoutMs: FIRST_START_TIMEOUT_MS,
    serviceGaveUp: () => serviceGaveUp(control, run),
  });
  if (options.token !== undefined) await enrollment.enroll({ dataDir: layout.dataDir, token: options.token });
  out(
    `\nhangar-agent ${version} is running (pid ${healthy.run.pid}), listening on ${healthy.run.address}.\n` +
      `Data: ${layout.dataDir}. Status: hangar-agent status. Logs: hangar-agent logs -f.\n` +
      `To pair the app with it, run on this host:\n  ${pairCommand(layout)}\n` +
      'and on your computer the `hangar hosts add` line it prints. (Enrolling through a relay comes with the relay integration.)\n',
  );
  return layout;
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
