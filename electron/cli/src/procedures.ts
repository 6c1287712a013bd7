import type { CoreMethod } from '@hangar/shared';

/** The hangar commands whose code calls a procedure, or why no command does. */
export type ProcedureUse = { commands: readonly string[] } | { none: string };

/**
 * Every procedure of the core API (CORE_PROCEDURES) and the hangar commands that call it: whatever
 * a window can do, a command can. A procedure without a command says why here. The type makes a
 * new procedure without an entry a compile error; electron/cli/test/procedures.test.ts checks that
 * each named command exists and that its code makes the call.
 */
export const PROCEDURE_USE: Record<CoreMethod, ProcedureUse> = {
  'hosts.list': { commands: ['hosts ls', 'session new', '__complete'] },
  'hosts.enroll_token': { commands: ['hosts enroll-token'] },
  'hosts.add': { commands: ['hosts add'] },
  'hosts.rename': { commands: ['hosts rename'] },
  'hosts.remove': { commands: ['hosts rm'] },

  'sessions.list': { commands: ['session ls', '__complete'] },
  'sessions.create': { commands: ['session new'] },
  'sessions.kill': { commands: ['session kill'] },

  // One terminal's life, all inside attach: open, the window resizing, repaints after a notice,
  // the detach key.
  'terminal.open': { commands: ['attach'] },
  'terminal.resize': { commands: ['attach'] },
  'terminal.redraw': { commands: ['attach'] },
  'terminal.close': { commands: ['attach'] },
  // attach moves the terminal onto a link of its own (a running core's terminal is resumed there).
  'terminal.attachment': { commands: ['attach'] },

  'jobs.list': { commands: ['jobs'] },
  'jobs.get': { commands: ['jobs show', 'logs', 'artifacts'] },
  'jobs.submit': { commands: ['run'] },
  'jobs.logs': { commands: ['run', 'logs'] },
  'jobs.wait': { commands: ['run', 'logs', 'cancel'] },
  'jobs.cancel': { commands: ['cancel', 'run'] },
  'jobs.retry': { commands: ['retry'] },
  'artifacts.download': { commands: ['artifacts', 'run'] },

  'tasks.add': { commands: ['task add'] },
  'tasks.list': { commands: ['task ls'] },
  'tasks.get': { commands: ['task show', 'task attach'] },
  'tasks.cancel': { commands: ['task cancel'] },

  'backups.set': { commands: ['backup set'] },
  'backups.status': { commands: ['backup status'] },
  'backups.now': { commands: ['backup now'] },
  'backups.list': { commands: ['backup ls'] },
  'backups.restore': { commands: ['backup restore'] },

  'previews.list': { commands: ['preview ls'] },
  'previews.add': { commands: ['preview add'] },
  'previews.remove': { commands: ['preview rm'] },
  'previews.open': { commands: ['preview open'] },
  'previews.close': {
    none:
      'hangar preview open serves until Ctrl-C and closes its preview then (like ssh -L). A preview a ' +
      'window opened is served by that running core, which the command cannot reach until it can talk ' +
      'to a running core (issue 18); until then it is closed in the window.',
  },
  'previews.watch': {
    none:
      "the previews view watches the hosts' listening ports while it is shown; hangar preview ls lists " +
      'them once (the host looks when asked), so no command needs the host to keep looking.',
  },

  'account.signup': { commands: ['signup'] },
  'account.login': { commands: ['login'] },
  'account.join': { commands: ['team join'] },
  'account.logout': { commands: ['logout'] },
  'account.status': { commands: ['account'] },
  'account.billing': { commands: ['account'] },
  'account.checkout': { commands: ['account upgrade'] },
  'account.portal': { commands: ['account manage'] },
  'devices.list': { commands: ['devices ls', 'devices approve', 'team rm'] },
  'devices.approve': { commands: ['devices approve'] },
  'devices.revoke': { commands: ['devices revoke'] },
  'account.team': { commands: ['team ls', 'team rm'] },
  'account.invite': { commands: ['team invite'] },
  'account.withdraw_invite': { commands: ['team withdraw'] },
  'account.remove_member': { commands: ['team rm'] },
};
