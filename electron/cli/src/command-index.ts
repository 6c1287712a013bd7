import type { Command } from 'commander';

export type Register = (program: Command) => void;

interface TopCommand {
  name: string;
  /** How `hangar --help` lists it: the name, `[options]` when it has any, its arguments. */
  term: string;
  description: string;
  /** The file that registers it (with the others of its group); imported only when it runs. */
  load: () => Promise<Register>;
  hidden?: true;
}

const up = () => import('./commands/up.js').then((m) => m.registerUp);
const ui = () => import('./commands/ui.js').then((m) => m.registerUi);
const hosts = () => import('./commands/hosts.js').then((m) => m.registerHosts);
const session = () => import('./commands/session.js').then((m) => m.registerSession);
const attach = () => import('./commands/attach.js').then((m) => m.registerAttach);
const run = () => import('./commands/run.js').then((m) => m.registerRun);
const jobs = () => import('./commands/jobs.js').then((m) => m.registerJobs);
const logs = () => import('./commands/logs.js').then((m) => m.registerLogs);
const artifacts = () => import('./commands/artifacts.js').then((m) => m.registerArtifacts);
const task = () => import('./commands/task.js').then((m) => m.registerTask);
const backup = () => import('./commands/backup.js').then((m) => m.registerBackup);
const preview = () => import('./commands/preview.js').then((m) => m.registerPreview);
const account = () => import('./commands/account.js').then((m) => m.registerAccount);
const devices = () => import('./commands/devices.js').then((m) => m.registerDevices);
const team = () => import('./commands/team.js').then((m) => m.registerTeam);
const completion = () => import('./commands/completion.js').then((m) => m.registerCompletion);

/**
 * Every top-level command, in the order `hangar --help` lists them, with what that listing shows:
 * `hangar --help` and `--version` load none of the command files (no schemas, SQLite, pty or
 * crypto), and a command loads only its own. electron/cli/test/command-index.test.ts checks this
 * list against what the files register, so the two cannot drift apart. No commander here: a call
 * read from the command table (command-table.ts) loads this module and not commander.
 */
export const TOP_COMMANDS: readonly TopCommand[] = [
  {
    name: 'up',
    term: 'up [options]',
    description:
      'run the local stack: an embedded agent for this machine, paired automatically as host "local", and the UI ' +
      '(an Electron window where Electron is installed, else served to a browser)',
    load: up,
  },
  {
    name: 'ui',
    term: 'ui [options]',
    description: 'serve the Hangar UI to a browser on this computer (web mode, 127.0.0.1 only); Ctrl-C stops it',
    load: ui,
  },
  {
    name: 'hosts',
    term: 'hosts',
    description: 'add, list, rename and remove hosts: paired with this computer, or enrolled in your account',
    load: hosts,
  },
  { name: 'session', term: 'session', description: 'create, list and kill terminal sessions on a host', load: session },
  {
    name: 'attach',
    term: 'attach [options] <host> <session>',
    description: 'attach this terminal to a session (full-screen programs work; resize follows the window)',
    load: attach,
  },
  {
    name: 'run',
    term: 'run [options]',
    description:
      'run a command on a host as a build job: packs this folder (git-tracked and untracked-not-ignored files; the ' +
      'whole folder outside git, never your home directory; an empty folder is an empty workspace), uploads it ' +
      'unless the host has it, streams the log, downloads artifacts to ./hangar-artifacts/<job>/, and exits with ' +
      'the job’s exit status (Ctrl-C cancels the job)',
    load: run,
  },
  {
    name: 'jobs',
    term: 'jobs [options]',
    description: 'list build jobs on one host or every paired host; `hangar jobs show <job>` for one',
    load: jobs,
  },
  {
    name: 'cancel',
    term: 'cancel [options] <job>',
    description: 'cancel a job: SIGTERM to its processes, SIGKILL after the grace period; waits for the end',
    load: jobs,
  },
  {
    name: 'retry',
    term: 'retry [options] <job>',
    description: 'run a finished job again as a new attempt; follow it with: hangar logs <job> --follow',
    load: jobs,
  },
  {
    name: 'logs',
    term: 'logs [options] <job>',
    description: 'print a job’s log (the latest attempt), raw bytes with colours; --follow streams it live',
    load: logs,
  },
  {
    name: 'artifacts',
    term: 'artifacts [options] <job>',
    description: 'download a job’s artifacts (sha256 checked) into ./hangar-artifacts/<job>/ or --out',
    load: artifacts,
  },
  {
    name: 'task',
    term: 'task',
    description: 'queue prompts for AI coding agents (Claude Code) that a fitting host claims and runs in a session',
    load: task,
  },
  {
    name: 'backup',
    term: 'backup',
    description: "restic snapshots of a host's directories, on a schedule and on demand, kept on that host",
    load: backup,
  },
  {
    name: 'preview',
    term: 'preview',
    description: "serve a host's dev server (HTTP and WebSocket/HMR) on this computer",
    load: preview,
  },
  {
    name: 'signup',
    term: 'signup [options]',
    description: 'make an account on a relay; this computer becomes its first, trusted device',
    load: account,
  },
  {
    name: 'login',
    term: 'login [options]',
    description: 'sign in to an account; a new computer waits until a trusted one approves it',
    load: account,
  },
  {
    name: 'logout',
    term: 'logout',
    description: 'sign out here and end this login at the relay; paired hosts stay paired',
    load: account,
  },
  {
    name: 'account',
    term: 'account [options]',
    description:
      "this computer's account: relay, email, this device's status and fingerprint; the plan, trial, build minutes and next invoice",
    load: account,
  },
  {
    name: 'devices',
    term: 'devices',
    description: "the account's devices: list, approve a new one, revoke one",
    load: devices,
  },
  {
    name: 'team',
    term: 'team',
    description:
      "the account's people: list them and the invitations waiting, invite, join with an invitation, remove, withdraw",
    load: team,
  },
  {
    name: 'completion',
    term: 'completion <shell>',
    description: 'print a shell completion script (bash, zsh or fish); see README "Shell completion"',
    load: completion,
  },
  { name: '__complete', term: '__complete', description: '', load: completion, hidden: true },
];
