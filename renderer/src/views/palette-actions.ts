import {
  FINAL_JOB_STATES,
  FINAL_TASK_STATES,
  visibleText,
  type AccountStatus,
  type DeviceEntry,
  type HostView,
  type TaskInfo,
} from '../api/index.js';
import type { PaletteAction } from './command-palette.js';
import { loadRecent } from './recent-actions.js';
import { canOpen, promptTitle } from './task-words.js';
import type { TerminalTab } from './terminal-tabs-state.js';
import type { HostSessions, JobEntry } from './use-hangar-data.js';
import type { HostPreviews } from './use-previews.js';

export interface PaletteCommands {
  newSession(host: string): void;
  attach(host: string, session: string): void;
  runJob(host: string, command: string): void;
  cancelJob(host: string, id: string): void;
  addHost(): void;
  renameHost(): void;
  removeHost(host: string): void;
  toggleTheme(): void;
  showJobs(): void;
  showTerminals(): void;
  showPreviews(): void;
  openPreview(host: string, port: number): void;
  addPreview(host: string, port: number): void;
  splitTab(tabId: string): void;
  renameTab(tabId: string): void;
  closeTab(tabId: string): void;
  activateTab(tabId: string): void;
  signIn(): void;
  signUp(): void;
  joinTeam(): void;
  enrollHost(): void;
  showAccount(): void;
  signOut(): void;
  approveDevice(deviceId: string): void;
  /** Shows the Tasks view with its prompt focused. */
  newTask(): void;
  showTasks(): void;
  /** Asks first, then cancels. */
  cancelTask(id: string): void;
  /** The task's terminal session, in the Terminals view. */
  openTask(id: string): void;
}

export interface PaletteContext {
  hosts: HostView[];
  sessions: Record<string, HostSessions>;
  jobs: JobEntry[];
  previews: Record<string, HostPreviews>;
  tabs: TerminalTab[];
  activeTab: string | undefined;
  /** undefined until known. */
  account?: AccountStatus | undefined;
  /** Devices that asked to join, for this trusted one to approve. */
  pendingDevices?: DeviceEntry[];
  /** Agent tasks, newest first (undefined: not listed yet). */
  tasks?: TaskInfo[] | undefined;
}

const RUN_PREFIX = 'run:';

function runAction(commands: PaletteCommands, host: string, command: string): PaletteAction {
  return {
    id: `${RUN_PREFIX}${host}:${command}`,
    label: `Run on ${host}: ${command}`,
    group: 'Run',
    keywords: [command],
    run: () => commands.runJob(host, command),
  };
}

/** Everything the palette offers for the current state, in the order shown when nothing is typed. */
export function paletteActions(ctx: PaletteContext, commands: PaletteCommands): PaletteAction[] {
  const online = ctx.hosts.filter((h) => h.status === 'online');
  const actions: PaletteAction[] = [];
  for (const host of online) {
    actions.push({
      id: `new-session:${host.name}`,
      label: `New session on ${host.name}`,
      group: 'Sessions',
      run: () => commands.newSession(host.name),
    });
  }
  for (const host of ctx.hosts) {
    for (const session of ctx.sessions[host.name]?.sessions ?? []) {
      actions.push({
        id: `attach:${host.name}/${session.name}`,
        label: `Attach to ${host.name}/${session.name}`,
        group: 'Sessions',
        keywords: [session.command.join(' ')],
        run: () => commands.attach(host.name, session.name),
      });
    }
  }
  for (const id of loadRecent()) {
    if (!id.startsWith(RUN_PREFIX)) continue;
    const rest = id.slice(RUN_PREFIX.length);
    const colon = rest.indexOf(':');
    const host = rest.slice(0, colon);
    if (ctx.hosts.some((h) => h.name === host)) actions.push(runAction(commands, host, rest.slice(colon + 1)));
  }
  for (const { host, job } of ctx.jobs) {
    if (FINAL_JOB_STATES.includes(job.state)) continue;
    actions.push({
      id: `cancel:${host}:${job.id}`,
      label: `Cancel job ${job.id} on ${host}: ${visibleText(job.command)}`,
      group: 'Jobs',
      run: () => commands.cancelJob(host, job.id),
    });
  }
  actions.push({
    id: 'show-jobs',
    label: 'Show jobs',
    group: 'Jobs',
    keywords: ['history', 'logs'],
    run: commands.showJobs,
  });
  actions.push(...taskActions(ctx, commands));
  actions.push(...previewActions(ctx, commands));
  for (const tab of ctx.tabs) {
    actions.push({
      id: `tab:${tab.id}`,
      label: `Go to tab ${tab.title}`,
      group: 'Tabs',
      run: () => commands.activateTab(tab.id),
    });
  }
  if (ctx.activeTab) {
    const tabId = ctx.activeTab;
    actions.push(
      { id: 'split-tab', label: 'Split tab', group: 'Tabs', run: () => commands.splitTab(tabId) },
      { id: 'rename-tab', label: 'Rename tab…', group: 'Tabs', run: () => commands.renameTab(tabId) },
      { id: 'close-tab', label: 'Close tab', group: 'Tabs', run: () => commands.closeTab(tabId) },
    );
  }
  actions.push({ id: 'show-terminals', label: 'Show terminals', group: 'Tabs', run: commands.showTerminals });
  actions.push(
    { id: 'add-host', label: 'Add host…', group: 'Hosts', run: commands.addHost },
    { id: 'pair-host', label: 'Pair host…', group: 'Hosts', keywords: ['code'], run: commands.addHost },
  );
  if (ctx.hosts.length > 0)
    actions.push({ id: 'rename-host', label: 'Rename host…', group: 'Hosts', run: commands.renameHost });
  for (const host of ctx.hosts) {
    actions.push({
      id: `remove-host:${host.name}`,
      label: `Remove host ${host.name}…`,
      group: 'Hosts',
      run: () => commands.removeHost(host.name),
    });
  }
  actions.push(...accountActions(ctx, commands));
  actions.push({
    id: 'toggle-theme',
    label: 'Toggle theme',
    group: 'Settings',
    keywords: ['dark', 'light'],
    run: commands.toggleTheme,
  });
  return dedupe(actions);
}

/** Sign in or up when signed out; enroll a host, the account and its devices, sign out when signed in. */
function accountActions(ctx: PaletteContext, commands: PaletteCommands): PaletteAction[] {
  if (ctx.account === undefined) return [];
  if (ctx.account.account === null) {
    return [
      { id: 'sign-in', label: 'Sign in…', group: 'Account', keywords: ['login', 'relay'], run: commands.signIn },
      {
        id: 'sign-up',
        label: 'Create an account…',
        group: 'Account',
        keywords: ['signup', 'register', 'relay'],
        run: commands.signUp,
      },
      {
        id: 'join-team',
        label: 'Join a team…',
        group: 'Account',
        keywords: ['invitation', 'invite', 'team', 'relay'],
        run: commands.joinTeam,
      },
    ];
  }
  const actions: PaletteAction[] = [
    {
      id: 'enroll-host',
      label: 'Enroll a host…',
      group: 'Hosts',
      keywords: ['token', 'relay', 'account'],
      run: commands.enrollHost,
    },
    {
      id: 'show-account',
      label: 'Account and devices…',
      group: 'Account',
      keywords: ['fingerprint', 'devices', 'approve', 'revoke'],
      run: commands.showAccount,
    },
  ];
  for (const device of ctx.pendingDevices ?? []) {
    actions.push({
      id: `approve-device:${device.device_id}`,
      label: `Approve device ${visibleText(device.name)}…`,
      group: 'Account',
      keywords: ['fingerprint', 'device'],
      run: () => commands.approveDevice(device.device_id),
    });
  }
  actions.push({ id: 'sign-out', label: 'Sign out', group: 'Account', keywords: ['logout'], run: commands.signOut });
  return actions;
}

/** A palette line holds this much of a task's prompt. */
const PROMPT_IN_LABEL = 50;

/** New task, the list; open each task's terminal, cancel each task that has not ended. */
function taskActions(ctx: PaletteContext, commands: PaletteCommands): PaletteAction[] {
  const actions: PaletteAction[] = [
    {
      id: 'new-task',
      label: 'New task…',
      group: 'Tasks',
      keywords: ['agent', 'claude', 'prompt'],
      run: commands.newTask,
    },
    { id: 'show-tasks', label: 'Show tasks', group: 'Tasks', keywords: ['agent', 'claude'], run: commands.showTasks },
  ];
  for (const task of ctx.tasks ?? []) {
    const title = shorten(promptTitle(task), PROMPT_IN_LABEL);
    // Two tasks may have the same prompt: the short id tells them apart (labels are unique).
    const where = `${task.host ?? 'queued'} · ${task.id.slice(0, 10)}`;
    if (canOpen(task)) {
      actions.push({
        id: `open-task:${task.id}`,
        label: `Open task's terminal: ${title} (${where})`,
        group: 'Tasks',
        keywords: ['agent', 'answer', task.id, task.session ?? ''],
        run: () => commands.openTask(task.id),
      });
    }
    if (!FINAL_TASK_STATES.includes(task.state)) {
      actions.push({
        id: `cancel-task:${task.id}`,
        label: `Cancel task: ${title} (${where})…`,
        group: 'Tasks',
        keywords: ['agent', 'stop', task.id],
        run: () => commands.cancelTask(task.id),
      });
    }
  }
  return actions;
}

/** Open each registered preview; add each port that listens but is not one yet. */
function previewActions(ctx: PaletteContext, commands: PaletteCommands): PaletteAction[] {
  const actions: PaletteAction[] = [];
  const online = ctx.hosts.filter((h) => h.status === 'online');
  for (const host of online) {
    for (const preview of ctx.previews[host.name]?.previews ?? []) {
      actions.push({
        id: `open-preview:${host.name}:${preview.port}`,
        label: `Open preview ${host.name}:${preview.port}`,
        group: 'Previews',
        keywords: ['browser', 'dev server', ...(preview.label ? [preview.label] : [])],
        run: () => commands.openPreview(host.name, preview.port),
      });
    }
  }
  actions.push({
    id: 'show-previews',
    label: 'Show previews',
    group: 'Previews',
    keywords: ['ports', 'dev server'],
    run: commands.showPreviews,
  });
  for (const host of online) {
    for (const candidate of ctx.previews[host.name]?.listening ?? []) {
      actions.push({
        id: `add-preview:${host.name}:${candidate.port}`,
        label: `Add preview ${host.name}:${candidate.port}${candidate.process ? ` (${visibleText(shorten(candidate.process, PROCESS_IN_LABEL))})` : ''}`,
        group: 'Previews',
        keywords: ['port', 'dev server', ...(candidate.process ? [candidate.process] : [])],
        run: () => commands.addPreview(host.name, candidate.port),
      });
    }
  }
  return actions;
}

/** "Run on <host>: <what was typed>", one per online host; "run mini: make" picks mini. */
export function typedRunActions(search: string, hosts: HostView[], commands: PaletteCommands): PaletteAction[] {
  const typed = search.replace(/^run(\s+on)?\s+/i, '');
  return hosts
    .filter((h) => h.status === 'online')
    .map((h) => {
      const own = new RegExp(`^${h.name}:\\s*`, 'i');
      const command = own.test(typed) ? typed.replace(own, '') : typed;
      return { ...runAction(commands, h.name, command), id: `${RUN_PREFIX}${h.name}:${command}`, keywords: [search] };
    })
    .filter((a) => a.label.length > 0 && !a.label.endsWith(': '));
}

/** A process is shown with its arguments (`node vite.js --port 5173 …`); one palette line holds this much. */
const PROCESS_IN_LABEL = 40;

function shorten(text: string, room: number): string {
  return text.length > room ? `${text.slice(0, room - 1).trimEnd()}…` : text;
}

function dedupe(actions: PaletteAction[]): PaletteAction[] {
  const seen = new Set<string>();
  return actions.filter((a) => (seen.has(a.label) ? false : (seen.add(a.label), true)));
}

/** The first free `shell-N` on a host, so new sessions have names a user can tell apart. */
export function nextSessionName(sessions: HostSessions | undefined): string {
  const taken = new Set(sessions?.sessions.map((s) => s.name));
  let n = 1;
  while (taken.has(`shell-${n}`)) n++;
  return `shell-${n}`;
}
