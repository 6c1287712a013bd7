import { dirname, join } from 'node:path';
import { tmuxSocketName } from '../sessions/tmux.js';
import type { InstallEnvironment, InstallLayout, InstallRecord } from './layout.js';
import type { Step } from './plan.js';
import { serviceControl } from './service-control.js';
import { TMUX_UNIT } from './systemd-unit.js';
import { existsSync } from 'node:fs';

/**
 * `hangar-agent uninstall`: stop the service, remove its files and the installed versions. The
 * data dir (keys, pairings, jobs, session logs) stays unless --purge, so a reinstall is the same
 * host to every paired device; --purge also removes the accounts a system install made.
 */
export function planUninstall(
  record: InstallRecord,
  layout: InstallLayout,
  environment: InstallEnvironment,
  purge: boolean,
): Step[] {
  const steps: Step[] = [...serviceControl(layout, environment.uid).stopSteps()];
  if (layout.platform === 'linux') {
    steps.push({ kind: 'remove', path: layout.serviceFile, why: 'the agent unit' });
    steps.push({ kind: 'remove', path: join(dirname(layout.serviceFile), TMUX_UNIT), why: 'the tmux unit' });
    steps.push({
      kind: 'run',
      argv: ['systemctl', ...(layout.mode === 'user' ? ['--user'] : []), 'daemon-reload'],
      why: 'make systemd forget the removed units',
    });
  } else {
    steps.push({ kind: 'remove', path: layout.serviceFile, why: 'the launchd job' });
    if (existsSync(record.data_dir)) {
      steps.push({
        kind: 'run',
        argv: ['tmux', '-L', tmuxSocketName(record.data_dir), 'kill-server'],
        why: "end the agent's terminals (its tmux server outlives the launchd job by design)",
        mayFail: true,
      });
    }
  }
  steps.push({ kind: 'remove', path: layout.home, why: 'the installed versions and the install record' });
  if (!purge) return steps;
  steps.push({ kind: 'remove', path: record.data_dir, why: '--purge: keys, pairings, jobs and session logs' });
  if (layout.logFile) steps.push({ kind: 'remove', path: layout.logFile, why: "--purge: the agent's log" });
  if (layout.platform === 'linux' && layout.mode === 'system') {
    const prefixArgs = environment.prefix ? ['--prefix', environment.prefix] : [];
    steps.push({
      kind: 'run',
      argv: ['userdel', ...prefixArgs, '--remove', layout.serviceUser],
      why: `--purge: the ${layout.serviceUser} account and its home`,
      mayFail: true,
    });
    steps.push({
      kind: 'run',
      argv: ['userdel', ...prefixArgs, 'hangar-job'],
      why: "--purge: the sandbox's job account",
      mayFail: true,
    });
  }
  return steps;
}
