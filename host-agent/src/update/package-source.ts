import { HangarError } from '@hangar/shared';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { InstallLayout } from '../install/layout.js';
import type { Runner } from '../install/plan.js';
import { CHANNEL_PATTERN, checkVersion, packageVersion, versionDir } from './versions.js';

export const PACKAGE_NAME = 'hangar-agent';
/** The install scripts npm must run (npm 11 asks for them by name): the native dependencies, and the package's own (lanes' relay). */
const NATIVE_SCRIPTS = '--allow-scripts=better-sqlite3,node-pty,hangar-agent';
/** npm builds better-sqlite3 from source where no prebuilt binary fits: minutes on a small VPS. */
const NPM_INSTALL_TIMEOUT_MS = 15 * 60_000;

/** The npm dist-tag a channel follows: `stable` is npm's `latest`; any other channel is its own tag. */
export function channelTag(channel: string): string {
  if (!CHANNEL_PATTERN.test(channel)) {
    throw new HangarError('E_BAD_REQUEST', `--channel ${JSON.stringify(channel)}: expected a name like stable`);
  }
  return channel === 'stable' ? 'latest' : channel;
}

/** Asks the registry (through npm, so the user's npm config, proxy and auth apply) what a channel's version is. */
export async function latestVersion(run: Runner, channel: string, registry?: string): Promise<string> {
  const argv = [
    'npm',
    'view',
    `${PACKAGE_NAME}@${channelTag(channel)}`,
    'version',
    '--json',
    ...registryArgs(registry),
  ];
  const result = await run(argv, { timeoutMs: 120_000 });
  if (result.code !== 0) {
    throw new HangarError(
      'E_UNAVAILABLE',
      `could not ask the registry for ${PACKAGE_NAME}'s ${channel} version: ${firstLine(result.stderr)}`,
    );
  }
  const parsed: unknown = JSON.parse(result.stdout || 'null');
  const version = Array.isArray(parsed) ? parsed.at(-1) : parsed;
  if (typeof version !== 'string') {
    throw new HangarError('E_NOT_FOUND', `the registry has no ${PACKAGE_NAME} on the ${channel} channel`);
  }
  return checkVersion(version, 'the registry answered');
}

/**
 * Installs `hangar-agent@version` beside the others, in `versions/<version>`, laid out as a
 * global npm install lays out a package (its dependencies inside it), so the directory runs
 * wherever it is. npm works in a staging directory that is renamed into place only when it
 * succeeded: a failed or killed download never leaves a half version that looks installed.
 */
export async function fetchVersion(
  layout: InstallLayout,
  run: Runner,
  version: string,
  registry?: string,
): Promise<string> {
  const target = versionDir(layout, version);
  if (existsSync(join(target, 'package.json'))) return target;
  const staging = join(layout.home, 'versions', `.staging-${version}-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const argv = [
      'npm',
      'install',
      '--global',
      '--prefix',
      staging,
      `${PACKAGE_NAME}@${version}`,
      NATIVE_SCRIPTS,
      '--no-audit',
      '--no-fund',
      ...registryArgs(registry),
    ];
    const result = await run(argv, { timeoutMs: NPM_INSTALL_TIMEOUT_MS });
    if (result.code !== 0) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `npm could not install ${PACKAGE_NAME}@${version} (exit ${result.code}): ${lastLines(result.stderr)}`,
      );
    }
    const installed = join(staging, 'lib', 'node_modules', PACKAGE_NAME);
    if (packageVersion(installed) !== version) {
      throw new HangarError('E_INTERNAL', `npm installed ${packageVersion(installed)} when ${version} was asked for`);
    }
    rmSync(target, { recursive: true, force: true });
    renameSync(installed, target);
    return target;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function registryArgs(registry: string | undefined): string[] {
  return registry ? ['--registry', registry] : [];
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? 'no output';
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join('\n') || 'no output';
}
