import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from 'react';
import { describeError, type CoreApi, type DeviceEntry, type TaskInfo } from '../api/index.js';
import { AccountDialog, ApproveDeviceDialog, SignInDialog, type SignInMode } from '../components/account-dialogs.js';
import { EnrollHostDialog } from '../components/enroll-dialog.js';
import { CancelTaskDialog } from '../components/cancel-task-dialog.js';
import { AddHostDialog, RemoveHostDialog, RenameHostDialog, RenameTabDialog } from '../components/host-dialogs.js';
import { HostList } from '../components/host-list.js';
import { Modal } from '../components/modal.js';
import { CommandPalette } from './command-palette.js';
import { nextSessionName, paletteActions, typedRunActions, type PaletteCommands } from './palette-actions.js';
import { useTerminalTabs } from './terminal-tabs-state.js';
import { TerminalsView } from './terminals-view.js';
import { useTheme, type ThemeChoice } from './theme.js';
import { useAccount } from './use-account.js';
import { useHangarData, type JobEntry } from './use-hangar-data.js';
import { usePreviews } from './use-previews.js';
import { useTasks } from './use-tasks.js';

// The jobs view (and its log renderer) and the previews view load on first use, keeping the first frame small.
const JobsView = lazy(() => import('./jobs-view.js'));
const PreviewsView = lazy(() => import('./previews-view.js'));
const TasksView = lazy(() => import('./tasks-view.js'));
const BackupsView = lazy(() => import('./backups-view.js'));
// The account page carries the chart library: loaded when it is first shown.
const AccountView = lazy(() => import('./account-view.js'));

type Dialog =
  | { kind: 'add-host' }
  | { kind: 'rename-host'; host?: string }
  | { kind: 'remove-host'; host: string }
  | { kind: 'rename-tab'; tabId: string }
  | { kind: 'settings' }
  | { kind: 'sign-in'; mode: SignInMode }
  | { kind: 'enroll' }
  | { kind: 'account' }
  | { kind: 'approve'; device: DeviceEntry }
  | { kind: 'cancel-task'; id: string };

const isMac = typeof navigator !== 'undefined' && /Mac/.test(navigator.platform);

export function App({ api, disconnected }: { api: CoreApi; disconnected: string | undefined }) {
  // Desktop notifications (a job ended, a session rang) come from the core in both modes.
  const data = useHangarData(api);
  const account = useAccount(api);
  const tabs = useTerminalTabs();
  const { theme, choice, setChoice, toggle } = useTheme();
  const [view, setView] = useState<'terminals' | 'jobs' | 'tasks' | 'previews' | 'backups' | 'account'>('terminals');
  const [paletteOpen, setPaletteOpen] = useState(false);
  const [dialog, setDialog] = useState<Dialog>();
  const [notice, setNotice] = useState<string>();
  const [selectedJob, setSelectedJob] = useState<{ host: string; id: string }>();
  const hosts = useMemo(() => data.hosts ?? [], [data.hosts]);
  // The hosts watch their ports while the previews view or the palette is shown: the palette offers
  // to add each port that listens, and a dev server started while the terminals were shown is news.
  const previews = usePreviews(api, hosts, view === 'previews' || paletteOpen);
  const tasks = useTasks(api, hosts);
  const [selectedTask, setSelectedTask] = useState<string>();
  const [taskFocus, setTaskFocus] = useState(0);
  // A bell from a terminal on screen needs no mark: the user is looking at it.
  const { bells, clearBell } = data;
  const onScreen = view === 'terminals' ? tabs.tabs.find((t) => t.id === tabs.activeId)?.panes : undefined;
  useEffect(() => {
    for (const pane of onScreen ?? [])
      if (bells.has(`${pane.host}/${pane.session}`)) clearBell(pane.host, pane.session);
  }, [onScreen, bells, clearBell]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((isMac ? event.metaKey : event.ctrlKey) && !event.shiftKey && event.key.toLowerCase() === 'k') {
        event.preventDefault();
        setPaletteOpen((open) => !open);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  const fail = useCallback((error: unknown) => setNotice(describeError(error)), []);
  const showJob = useCallback(
    (entry: JobEntry) => {
      data.addJob(entry);
      setSelectedJob({ host: entry.host, id: entry.job.id });
      setView('jobs');
    },
    [data],
  );
  const showTask = useCallback(
    (task: TaskInfo) => {
      tasks.addTask(task);
      setSelectedTask(task.id);
      setView('tasks');
    },
    [tasks],
  );
  // A task's agent runs in a terminal session on its host: the user answers it there.
  const openTask = useCallback(
    (task: TaskInfo) => {
      if (!task.host || !task.session) return;
      tabs.open({ host: task.host, session: task.session });
      setView('terminals');
    },
    [tabs],
  );
  const newSession = useCallback(
    (host: string) =>
      api
        .call('sessions.create', {
          host,
          session: { name: nextSessionName(data.sessions[host]), command: ['sh', '-c', 'exec "${SHELL:-/bin/sh}" -l'] },
        })
        .then((session) => {
          data.refreshSessions();
          return { host, session: session.name };
        }),
    [api, data],
  );

  const commands: PaletteCommands = {
    newSession: (host) =>
      void newSession(host).then((target) => {
        tabs.open(target);
        setView('terminals');
      }, fail),
    attach: (host, session) => {
      tabs.open({ host, session });
      setView('terminals');
    },
    runJob: (host, command) => void api.call('jobs.submit', { host, spec: { command } }).then(showJob, fail),
    cancelJob: (host, id) => void api.call('jobs.cancel', { host, id }).then((result) => data.addJob(result), fail),
    addHost: () => setDialog({ kind: 'add-host' }),
    renameHost: () => setDialog({ kind: 'rename-host' }),
    removeHost: (host) => setDialog({ kind: 'remove-host', host }),
    toggleTheme: toggle,
    showJobs: () => setView('jobs'),
    showTerminals: () => setView('terminals'),
    showPreviews: () => setView('previews'),
    openPreview: (host, port) => void previews.open(host, port).catch(fail),
    addPreview: (host, port) => void previews.add(host, port).then(() => setView('previews'), fail),
    splitTab: (tabId) => {
      const host = tabs.tabs.find((t) => t.id === tabId)?.panes[0]?.host;
      if (host) void newSession(host).then((target) => tabs.split(tabId, target), fail);
    },
    renameTab: (tabId) => setDialog({ kind: 'rename-tab', tabId }),
    closeTab: tabs.close,
    activateTab: (tabId) => {
      tabs.activate(tabId);
      setView('terminals');
    },
    signIn: () => setDialog({ kind: 'sign-in', mode: 'signin' }),
    signUp: () => setDialog({ kind: 'sign-in', mode: 'signup' }),
    joinTeam: () => setDialog({ kind: 'sign-in', mode: 'join' }),
    enrollHost: () => setDialog({ kind: 'enroll' }),
    showAccount: () => setDialog({ kind: 'account' }),
    signOut: () => void api.call('account.logout', {}).catch(fail),
    newTask: () => {
      setView('tasks');
      setTaskFocus((n) => n + 1);
    },
    showTasks: () => setView('tasks'),
    cancelTask: (id) => setDialog({ kind: 'cancel-task', id }),
    openTask: (id) => {
      const task = tasks.tasks?.find((t) => t.id === id);
      if (task) openTask(task);
    },
    approveDevice: (deviceId) => {
      const device = account.pending.find((d) => d.device_id === deviceId);
      if (device) setDialog({ kind: 'approve', device });
    },
  };
  const context = {
    hosts,
    sessions: data.sessions,
    jobs: data.jobs,
    previews: previews.byHost,
    tabs: tabs.tabs,
    activeTab: tabs.activeId,
    account: account.status,
    pendingDevices: account.pending,
    tasks: tasks.tasks,
  };
  // A device that asked to join while no other dialog is open: the prompt shows by itself.
  const asking = account.pending[0];
  const approving = dialog?.kind === 'approve' ? dialog.device : dialog === undefined ? asking : undefined;
  const signedIn = account.status?.account ?? null;
  const cancelling = dialog?.kind === 'cancel-task' ? tasks.tasks?.find((t) => t.id === dialog.id) : undefined;

  return (
    <div className="app">
      <header className="app-header">
        <h1>Hangar</h1>
        <nav aria-label="Views" className="view-switch">
          <button type="button" aria-pressed={view === 'terminals'} onClick={() => setView('terminals')}>
            Terminals
          </button>
          <button type="button" aria-pressed={view === 'jobs'} onClick={() => setView('jobs')}>
            Jobs
          </button>
          <button type="button" aria-pressed={view === 'tasks'} onClick={() => setView('tasks')}>
            Tasks
          </button>
          <button type="button" aria-pressed={view === 'previews'} onClick={() => setView('previews')}>
            Previews
          </button>
          <button type="button" aria-pressed={view === 'backups'} onClick={() => setView('backups')}>
            Backups
          </button>
          {signedIn && (
            <button type="button" aria-pressed={view === 'account'} onClick={() => setView('account')}>
              Account
            </button>
          )}
        </nav>
        <span className="header-spacer" />
        <button type="button" onClick={() => setPaletteOpen(true)} aria-keyshortcuts={isMac ? 'Meta+K' : 'Control+K'}>
          Command palette <kbd>{isMac ? '⌘K' : 'Ctrl+K'}</kbd>
        </button>
        {signedIn ? (
          <button type="button" onClick={commands.showAccount} aria-label={`Account ${signedIn.email}`}>
            <span className={`status-dot relay-dot relay-${account.status!.relay}`} aria-hidden="true" />{' '}
            {signedIn.email}
          </button>
        ) : (
          <button type="button" onClick={commands.signIn}>
            Sign in…
          </button>
        )}
        <button type="button" onClick={() => setDialog({ kind: 'settings' })}>
          Settings
        </button>
      </header>
      {disconnected && (
        <div className="banner" role="alert">
          Lost the connection to the Hangar core ({disconnected}). Start it again (npm start or hangar ui), then{' '}
          <button type="button" onClick={() => location.reload()}>
            Reload
          </button>
        </div>
      )}
      {notice && (
        <div className="banner" role="alert">
          {notice}{' '}
          <button type="button" onClick={() => setNotice(undefined)} aria-label="Dismiss message">
            Dismiss
          </button>
        </div>
      )}
      <div className="app-body">
        <aside className="sidebar" aria-label="Hosts sidebar">
          <div className="sidebar-header">
            <h2>Hosts</h2>
            <span>
              {signedIn && (
                <button type="button" onClick={commands.enrollHost}>
                  Enroll a host…
                </button>
              )}{' '}
              <button type="button" onClick={() => setDialog({ kind: 'add-host' })}>
                Add host…
              </button>
            </span>
          </div>
          <HostList
            hosts={data.hosts}
            error={data.hostsError}
            sessions={data.sessions}
            bells={data.bells}
            onAttach={commands.attach}
            onNewSession={commands.newSession}
            onAddHost={commands.addHost}
            onRename={(host) => setDialog({ kind: 'rename-host', host })}
            onRemove={commands.removeHost}
            onRetry={() => location.reload()}
          />
        </aside>
        <main className="main">
          <TerminalsView
            api={api}
            tabs={tabs}
            theme={theme}
            visible={view === 'terminals'}
            onSplit={commands.splitTab}
            onRename={commands.renameTab}
          />
          {view === 'jobs' && (
            <Suspense fallback={<p className="empty-state">Loading jobs…</p>}>
              <JobsView
                api={api}
                hosts={hosts}
                jobs={data.jobs}
                selected={selectedJob}
                theme={theme}
                onSelect={setSelectedJob}
                onSubmitted={showJob}
              />
            </Suspense>
          )}
          {view === 'backups' && (
            <Suspense fallback={<p className="empty-state">Loading backups…</p>}>
              <BackupsView api={api} hosts={hosts} />
            </Suspense>
          )}
          {view === 'tasks' && (
            <Suspense fallback={<p className="empty-state">Loading tasks…</p>}>
              <TasksView
                api={api}
                hosts={hosts}
                data={tasks}
                selected={selectedTask}
                focusRequest={taskFocus}
                onSelect={setSelectedTask}
                onAdded={showTask}
                onOpen={openTask}
                onCancel={(task) => setDialog({ kind: 'cancel-task', id: task.id })}
              />
            </Suspense>
          )}
          {view === 'previews' && (
            <Suspense fallback={<p className="empty-state">Loading previews…</p>}>
              <PreviewsView hosts={hosts} previews={previews} />
            </Suspense>
          )}
          {view === 'account' && signedIn && (
            <Suspense fallback={<p className="empty-state">Loading the account…</p>}>
              <AccountView api={api} />
            </Suspense>
          )}
        </main>
      </div>
      {paletteOpen && (
        <CommandPalette
          onClose={() => setPaletteOpen(false)}
          actions={paletteActions(context, commands)}
          typedActions={(search) => typedRunActions(search, hosts, commands)}
        />
      )}
      {dialog?.kind === 'add-host' && <AddHostDialog api={api} onClose={() => setDialog(undefined)} />}
      {dialog?.kind === 'rename-host' && (
        <RenameHostDialog api={api} hosts={hosts} initial={dialog.host} onClose={() => setDialog(undefined)} />
      )}
      {dialog?.kind === 'remove-host' && (
        <RemoveHostDialog api={api} host={dialog.host} onClose={() => setDialog(undefined)} />
      )}
      {dialog?.kind === 'rename-tab' && (
        <RenameTabDialog
          title={tabs.tabs.find((t) => t.id === dialog.tabId)?.title ?? ''}
          onRename={(title) => tabs.rename(dialog.tabId, title)}
          onClose={() => setDialog(undefined)}
        />
      )}
      {dialog?.kind === 'sign-in' && <SignInDialog api={api} mode={dialog.mode} onClose={() => setDialog(undefined)} />}
      {dialog?.kind === 'enroll' && <EnrollHostDialog api={api} hosts={hosts} onClose={() => setDialog(undefined)} />}
      {dialog?.kind === 'account' && account.status && (
        <AccountDialog
          api={api}
          status={account.status}
          onApprove={(device) => setDialog({ kind: 'approve', device })}
          onClose={() => setDialog(undefined)}
        />
      )}
      {approving && (
        <ApproveDeviceDialog
          api={api}
          device={approving}
          onDone={() => {
            account.dismiss(approving.device_id);
            setDialog(undefined);
          }}
        />
      )}
      {dialog?.kind === 'cancel-task' && cancelling && (
        <CancelTaskDialog
          api={api}
          task={cancelling}
          onCancelled={tasks.addTask}
          onClose={() => setDialog(undefined)}
        />
      )}
      {dialog?.kind === 'settings' && (
        <Modal title="Settings" onClose={() => setDialog(undefined)}>
          <label>
            Theme
            <select value={choice} onChange={(event) => setChoice(event.target.value as ThemeChoice)}>
              <option value="system">Follow the system</option>
              <option value="light">Light</option>
              <option value="dark">Dark</option>
            </select>
          </label>
          <div className="modal-actions">
            <button type="button" onClick={() => setDialog(undefined)}>
              Done
            </button>
          </div>
        </Modal>
      )}
    </div>
  );
}
