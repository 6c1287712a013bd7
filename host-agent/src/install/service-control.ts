import { HangarError } from '@hangar/shared';
import { LAUNCHD_LABEL, SYSTEMD_UNIT, type InstallLayout } from './layout.js';
import type { Runner, Step } from './plan.js';
import { TMUX_UNIT } from './systemd-unit.js';

export interface ServiceState {
  /** The service manager's own words: `active (running)`, `inactive (dead)`, `running`, `not loaded`. */
  state: string;
  running: boolean;
  pid?: number;
}

/**
 * The service manager's commands for one install: systemd's systemctl/loginctl/journalctl on
 * Linux, launchctl on macOS. Only these calls are made, and the tests' stand-ins
 * (test/fixtures/systemd, test/fixtures/launchd) enforce exactly their command lines.
 */
export interface ServiceControl {
  /** After the service files are written: load them, enable at boot, (re)start. */
  startSteps(): Step[];
  /** Before the service files are removed: stop and disable (each may fail: it may be gone). */
  stopSteps(): Step[];
  restart(run: Runner): Promise<void>;
  state(run: Runner): Promise<ServiceState>;
  logsArgv(follow: boolean, lines: number): string[];
}

export function serviceControl(layout: InstallLayout, uid: number): ServiceControl {
  return layout.platform === 'linux' ? systemdControl(layout) : launchdControl(layout, uid);
}

function systemdControl(layout: InstallLayout): ServiceControl {
  const scope = layout.mode === 'user' ? ['--user'] : [];
  const systemctl = (...args: string[]) => ['systemctl', ...scope, ...args];
  return {
    startSteps: () => [
      { kind: 'run', argv: systemctl('daemon-reload'), why: 'make systemd read the new unit files' },
      {
        kind: 'run',
        argv: systemctl('enable', TMUX_UNIT, SYSTEMD_UNIT),
        why: 'start both at boot',
      },
      { kind: 'run', argv: systemctl('start', TMUX_UNIT), why: 'start the tmux server the terminals live in' },
      {
        kind: 'run',
        argv: systemctl('restart', SYSTEMD_UNIT),
        why: 'start the agent (or restart it on the new unit; terminals stay)',
      },
    ],
    stopSteps: () => [
      {
        kind: 'run',
        argv: systemctl('disable', '--now', SYSTEMD_UNIT, TMUX_UNIT),
        why: 'stop the agent and its tmux server (this ends the terminals) and no longer start them at boot',
        mayFail: true,
      },
    ],
    async restart(run) {
      const result = await run(systemctl('restart', SYSTEMD_UNIT));
      if (result.code !== 0) throw managerFailed(systemctl('restart', SYSTEMD_UNIT), result.stderr);
    },
    async state(run) {
      const result = await run(systemctl('show', SYSTEMD_UNIT, '--property=ActiveState,SubState,MainPID'));
      if (result.code !== 0) return { state: `unknown (${result.stderr.trim()})`, running: false };
      const fields = Object.fromEntries(
        result.stdout
          .split('\n')
          .filter((line) => line.includes('='))
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      const pid = Number(fields['MainPID'] ?? 0);
      return {
        state: `${fields['ActiveState'] ?? 'unknown'} (${fields['SubState'] ?? 'unknown'})`,
        running: fields['ActiveState'] === 'active',
        ...(pid > 0 ? { pid } : {}),
      };
    },
    logsArgv: (follow, lines) => [
      'journalctl',
      ...scope,
      '--unit',
      SYSTEMD_UNIT,
      '--lines',
      String(lines),
      '--no-pager',
      ...(follow ? ['--follow'] : []),
    ],
  };
}

function launchdControl(layout: InstallLayout, uid: number): ServiceControl {
  // gui/<uid> is the logged-in user's domain, where LaunchAgents live; system/ holds daemons.
  const domain = layout.mode === 'system' ? 'system' : `gui/${uid}`;
  const target = `${domain}/${LAUNCHD_LABEL}`;
  return {
    startSteps: () => [
      {
        kind: 'run',
        argv: ['launchctl', 'bootout', target],
        why: 'unload an earlier copy of the job, if any (tmux keeps running: AbandonProcessGroup)',
        mayFail: true,
      },
      { kind: 'run', argv: ['launchctl', 'enable', target], why: 'clear a disabled flag left by an earlier uninstall' },
      {
        kind: 'run',
        argv: ['launchctl', 'bootstrap', domain, layout.serviceFile],
        why: 'load the job; RunAtLoad starts the agent',
      },
    ],
    stopSteps: () => [
      {
        kind: 'run',
        argv: ['launchctl', 'bootout', target],
        why: 'stop the agent and unload the job',
        mayFail: true,
      },
    ],
    async restart(run) {
      const argv = ['launchctl', 'kickstart', '-k', target];
      const result = await run(argv);
      if (result.code !== 0) throw managerFailed(argv, result.stderr);
    },
    async state(run) {
      const result = await run(['launchctl', 'print', target]);
      if (result.code !== 0) return { state: 'not loaded', running: false };
      const state = /^\s*state = (.+)$/m.exec(result.stdout)?.[1]?.trim() ?? 'unknown';
      const pid = Number(/^\s*pid = (\d+)$/m.exec(result.stdout)?.[1] ?? 0);
      return { state, running: state === 'running', ...(pid > 0 ? { pid } : {}) };
    },
    logsArgv: (follow, lines) => ['tail', '-n', String(lines), ...(follow ? ['-F'] : []), layout.logFile!],
  };
}

function managerFailed(argv: string[], stderr: string): HangarError {
  return new HangarError(
    'E_INTERNAL',
    `${argv.join(' ')} failed: ${stderr.trim() || 'no output'}. See: hangar-agent logs`,
  );
}
