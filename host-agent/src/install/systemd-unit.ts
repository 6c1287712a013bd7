import type { InstallMode } from './layout.js';

/** What the service runs: Node, its flags, the agent through the `current` link, and its environment. */
export interface ServiceCommand {
  argv: string[];
  env: Record<string, string>;
}

export interface UnitOptions {
  mode: InstallMode;
  command: ServiceCommand;
  /** System units: the account the agent runs as. */
  user?: string;
  workingDirectory: string;
}

/**
 * Environment the unit gives the agent besides AGENT_ENV: HANGAR_CGROUP_DELEGATED tells it that
 * systemd handed it its cgroup (Delegate=yes), so it moves itself into a leaf and makes the
 * sandbox's per-job cgroups beside it (service/cgroup-leaf.ts).
 */
export const DELEGATED_ENV = 'HANGAR_CGROUP_DELEGATED';

/** The unit that keeps the agent's tmux server, so that no restart of the agent can end a terminal. */
export const TMUX_UNIT = 'hangar-tmux.service';

/**
 * The agent's unit. Each choice, because the agent's terminals are real shells and its jobs run in
 * bubblewrap:
 * - The tmux server lives in a unit of its own (renderTmuxUnit). In the agent's cgroup it would be
 *   killed by every restart (KillMode=control-group or mixed), and with KillMode=process it would
 *   keep the cgroup populated, so the agent could not delegate controllers to per-job cgroups
 *   without the next start failing (a cgroup with subtree controllers may hold no process).
 * - KillMode=mixed: SIGTERM to the agent alone, which drains its jobs for up to 30 s; then SIGKILL
 *   to whatever is left in the cgroup, so a crashed run never leaks job processes into the next.
 * - Delegate=yes: the cgroup subtree is the agent's: it moves itself into a leaf and makes per-job
 *   cgroups with CPU/memory/pids limits beside it (service/cgroup-leaf.ts).
 * - TimeoutStopSec above the agent's 30 s drain grace, so running jobs can finish.
 * - Hardening that leaves a shell usable and bwrap working (user namespaces stay allowed):
 *   ProtectSystem=full (/usr, /boot, /etc read-only: root's anyway), NoNewPrivileges and the
 *   seccomp-based options it implies for an unprivileged user (bwrap is unprivileged here and sets
 *   no_new_privs itself). Left out on purpose: PrivateTmp (tmux's socket in /tmp/tmux-UID must be
 *   the same for the agent and the tmux unit, across restarts), RestrictNamespaces and PrivateUsers
 *   (bwrap makes user, mount, pid and net namespaces), ProtectControlGroups (it would make the
 *   delegated cgroup read-only), ProtectHome and ProtectKernelTunables (a user's shell reads them),
 *   SystemCallFilter=@system-service (it forbids mount, which bwrap needs), ProtectClock (its
 *   device allow-list would cut the agent off from /dev/ptmx).
 * - User units get none of the sandboxing options: a user manager can only apply them through a
 *   user namespace of its own (PrivateUsers), inside which bwrap's mappings fail.
 */
export function renderSystemdUnit(options: UnitOptions): string {
  const service = [
    'Type=simple',
    ...userLines(options),
    `WorkingDirectory=${quote(options.workingDirectory)}`,
    ...Object.entries({ ...options.command.env, [DELEGATED_ENV]: '1' }).map(
      ([name, value]) => `Environment=${quote(`${name}=${value}`)}`,
    ),
    `ExecStart=${options.command.argv.map(quote).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2s',
    'TimeoutStopSec=45s',
    'KillMode=mixed',
    'Delegate=yes',
    'LimitNOFILE=65536',
    // Per-job cgroups carry their own pids.max; the service-wide default (15% of the kernel's
    // threads) would cap a host's builds together for no reason.
    'TasksMax=infinity',
    ...(options.mode === 'system' ? HARDENING : []),
  ];
  return [
    HEADER,
    '[Unit]',
    'Description=Hangar host agent (terminals, jobs, previews)',
    `Wants=${TMUX_UNIT}`,
    `After=${TMUX_UNIT}${options.mode === 'system' ? ' network-online.target' : ''}`,
    ...(options.mode === 'system' ? ['Wants=network-online.target'] : []),
    // At most 5 failed starts in 2 minutes, then systemd stops trying (status shows why).
    'StartLimitIntervalSec=120',
    'StartLimitBurst=5',
    '',
    '[Service]',
    ...service,
    '',
    '[Install]',
    `WantedBy=${options.mode === 'system' ? 'multi-user.target' : 'default.target'}`,
    '',
  ].join('\n');
}

export interface TmuxUnitOptions {
  mode: InstallMode;
  user?: string;
  tmux: string;
  socketName: string;
  configFile: string;
}

/**
 * The tmux server of the agent's sessions, on the agent's socket, in a unit of its own: updating,
 * restarting or crashing the agent leaves it alone. exit-empty off keeps it up with no session
 * (Type=forking: the client forks the server and exits). The agent sources its own config into
 * it at start; until the agent has written that file tmux just finds none. No hardening here:
 * this is where the user's own shells run, and a read-only /usr or no_new_privs would break
 * `sudo apt-get install` typed into a terminal.
 */
export function renderTmuxUnit(options: TmuxUnitOptions): string {
  return [
    HEADER,
    '[Unit]',
    'Description=Hangar terminals (the tmux server behind hangar-agent)',
    'StartLimitIntervalSec=120',
    'StartLimitBurst=5',
    '',
    '[Service]',
    'Type=forking',
    ...userLines(options),
    'WorkingDirectory=~',
    // `\;` is tmux's command separator, escaped so systemd passes it on as a word.
    `ExecStart=${[options.tmux, '-L', options.socketName, '-f', options.configFile, 'start-server'].map(quote).join(' ')} \\; set-option -s exit-empty off`,
    'Restart=on-failure',
    'RestartSec=1s',
    'LimitNOFILE=65536',
    'TasksMax=infinity',
    '',
    '[Install]',
    `WantedBy=${options.mode === 'system' ? 'multi-user.target' : 'default.target'}`,
    '',
  ].join('\n');
}

const HEADER =
  '# Written by `hangar-agent install`; `hangar-agent uninstall` removes it. Edits are lost at the next install.';

const HARDENING = [
  'NoNewPrivileges=yes',
  'ProtectSystem=full',
  'ProtectKernelModules=yes',
  'ProtectKernelLogs=yes',
  'RestrictSUIDSGID=yes',
  'RestrictRealtime=yes',
  'LockPersonality=yes',
];

function userLines(options: { mode: InstallMode; user?: string }): string[] {
  return options.mode === 'system' && options.user ? [`User=${options.user}`, `Group=${options.user}`] : [];
}

/**
 * One word of ExecStart= or Environment=, quoted the way systemd.syntax(7) reads it: in double
 * quotes with backslash escapes, and `%` doubled since systemd expands specifiers everywhere
 * (and `$` doubled in ExecStart, where it expands variables).
 */
export function quote(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[\w@+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
