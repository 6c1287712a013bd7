import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  checkRestic,
  checkSandbox,
  checkTmux,
  freeBytesAt,
  macosChecks,
  runCommand,
  type CheckResult,
  type DoctorOptions,
} from './checks.js';

export type { CheckResult, CheckStatus, DoctorOptions } from './checks.js';

/** `hangar-agent doctor`: the host traps we know of, each with its fix. Checks for other OSes are skipped with a note. */
export async function runDoctor(options: DoctorOptions = {}): Promise<CheckResult[]> {
  const platform = options.platform ?? process.platform;
  const run = options.run ?? runCommand;
  const dataDir = options.dataDir ?? join(homedir(), '.hangar-agent');
  const results: CheckResult[] = [await checkTmux(run)];
  if (platform === 'linux') results.push(...(await checkSandbox(dataDir, options.bwrapPath, options.slirp4netnsPath)));
  else results.push({ name: 'bubblewrap sandbox', status: 'skip', detail: 'Linux only' });
  results.push(await checkRestic(run, options.resticPath));
  if (platform === 'darwin') {
    results.push(...(await macosChecks({ ...options, run, freeBytes: options.freeBytes ?? freeBytesAt })));
  } else {
    results.push({
      name: 'Tart (macOS VMs)',
      status: 'skip',
      detail: 'macOS only: macOS version, Tart, base image, guest agent, DHCP lease, disk space, 2-VM limit',
    });
  }
  return results;
}

const MARK = { ok: '✓', fail: '✗', warn: '!', skip: '-' } as const;

/** One line per check: mark, name, what was found, and the fix when there is one. */
export function formatDoctor(results: CheckResult[]): string {
  return results
    .map((result) => {
      const line = `${MARK[result.status]} ${result.name}: ${result.detail}`;
      return result.fix && result.status !== 'ok' ? `${line}\n    fix: ${result.fix}` : line;
    })
    .join('\n');
}

/** Exit status for the command: failures fail, warnings do not. */
export function doctorPassed(results: CheckResult[]): boolean {
  return results.every((result) => result.status !== 'fail');
}
