import { HangarError } from '@hangar/shared';
import { existsSync, readFileSync } from 'node:fs';
import { checkTmux, type CheckResult } from '../doctor/checks.js';
import { TART_INSTALL_HINT } from '../jobs/executors/tart-cli.js';
import type { ServicePlatform } from './layout.js';
import type { Runner } from './plan.js';

export const MIN_NODE_MAJOR = 20;

export interface PrerequisiteOptions {
  platform: ServicePlatform;
  run: Runner;
  /** Linux: go on without bubblewrap (terminals and shell jobs only, no sandbox executor). */
  withoutSandbox?: boolean;
  /** macOS: the Tart executor is wanted, so Tart must be there. */
  tart?: boolean;
  nodeVersion?: string;
  osRelease?: string;
}

/**
 * What the agent needs before it is worth installing a service: Node 20+, tmux 3.2+ (every
 * terminal is a tmux session), bubblewrap on Linux (the sandbox executor) and slirp4netns (its
 * default network; a warning only), Tart on a Mac when asked. Each miss says how to install it on this system.
 */
export async function checkPrerequisites(options: PrerequisiteOptions): Promise<CheckResult[]> {
  const { run } = options;
  const installer = packageInstaller(options.platform, options.osRelease ?? readOsRelease());
  const results: CheckResult[] = [];
  const node = options.nodeVersion ?? process.versions.node;
  const major = Number(node.split('.')[0]);
  results.push(
    major >= MIN_NODE_MAJOR
      ? { name: `Node ≥ ${MIN_NODE_MAJOR}`, status: 'ok', detail: `v${node}` }
      : {
          name: `Node ≥ ${MIN_NODE_MAJOR}`,
          status: 'fail',
          detail: `v${node} is too old`,
          fix: `install Node ${MIN_NODE_MAJOR} or newer (https://nodejs.org/en/download)`,
        },
  );
  const tmux = await checkTmux((file, args) => run([file, ...args]));
  if (tmux.status !== 'ok') tmux.fix = `${installer} tmux (3.2 or newer)`;
  results.push(tmux);
  if (options.platform === 'linux') {
    const bwrap = await run(['bwrap', '--version']);
    if (bwrap.code === 0) {
      results.push({ name: 'bubblewrap', status: 'ok', detail: bwrap.stdout.trim() });
    } else {
      results.push({
        name: 'bubblewrap',
        status: options.withoutSandbox ? 'warn' : 'fail',
        detail: options.withoutSandbox
          ? 'not installed: sandbox jobs will be refused (terminals and shell jobs work)'
          : 'not installed: the sandbox executor needs it',
        fix: `${installer} bubblewrap${options.withoutSandbox ? '' : ' (or install with --without-sandbox)'}`,
      });
    }
  }
  if (options.platform === 'linux' && !options.withoutSandbox) results.push(await checkSlirp4netns(run, installer));
  if (options.platform === 'darwin' && options.tart) {
    const tart = await run(['tart', '--version']);
    results.push(
      tart.code === 0
        ? { name: 'Tart', status: 'ok', detail: `tart ${tart.stdout.trim()}` }
        : { name: 'Tart', status: 'fail', detail: 'tart is not installed', fix: TART_INSTALL_HINT },
    );
  }
  return results;
}

/**
 * A sandbox job's default network (outbound) is slirp4netns'. Without it only such jobs fail
 * (terminals, shell jobs and `--network none` sandbox jobs run), so the install goes on and says
 * how to add it, rather than refuse.
 */
async function checkSlirp4netns(run: Runner, installer: string): Promise<CheckResult> {
  const slirp = await run(['slirp4netns', '--version']);
  if (slirp.code === 0) {
    return { name: 'slirp4netns', status: 'ok', detail: slirp.stdout.split('\n')[0]!.trim() };
  }
  return {
    name: 'slirp4netns',
    status: 'warn',
    detail: 'not installed: sandbox jobs with the default network (outbound) will fail; --network none ones run',
    fix: `${installer} slirp4netns`,
  };
}

export function failedPrerequisites(results: readonly CheckResult[]): HangarError | undefined {
  const failed = results.filter((result) => result.status === 'fail');
  if (failed.length === 0) return undefined;
  const lines = failed.map((result) => `  ${result.name}: ${result.detail}; ${result.fix}`);
  return new HangarError(
    'E_UNAVAILABLE',
    `this machine is missing what the agent needs; nothing was changed:\n${lines.join('\n')}\nthen run the same command again`,
  );
}

/** The install command for this OS's package manager, for the hints above. */
export function packageInstaller(platform: ServicePlatform, osRelease: string): string {
  if (platform === 'darwin') return 'brew install';
  const ids = /^ID(?:_LIKE)?=(.*)$/gm;
  const family = [...osRelease.matchAll(ids)].map((match) => match[1]!.replace(/"/g, '')).join(' ');
  if (/\b(debian|ubuntu)\b/.test(family)) return 'sudo apt-get install -y';
  if (/\b(fedora|rhel|centos)\b/.test(family)) return 'sudo dnf install -y';
  if (/\b(arch)\b/.test(family)) return 'sudo pacman -S';
  if (/\b(alpine)\b/.test(family)) return 'sudo apk add';
  if (/\b(suse|opensuse)\b/.test(family)) return 'sudo zypper install';
  return 'install with your package manager:';
}

function readOsRelease(): string {
  return existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
}

const MARK = { ok: '✓', fail: '✗', warn: '!', skip: '-' } as const;

export function formatChecks(results: readonly CheckResult[]): string {
  return results
    .map((result) => `  ${MARK[result.status]} ${result.name}: ${result.detail}${result.fix ? ` — ${result.fix}` : ''}`)
    .join('\n');
}
