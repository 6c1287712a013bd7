import { Command } from 'commander';
import { registerAccount } from './commands/account.js';
import { registerArtifacts } from './commands/artifacts.js';
import { registerAttach } from './commands/attach.js';
import { registerDevices } from './commands/devices.js';
import { registerHosts } from './commands/hosts.js';
import { registerJobs } from './commands/jobs.js';
import { registerLogs } from './commands/logs.js';
import { registerPreview } from './commands/preview.js';
import { registerRun } from './commands/run.js';
import { registerSession } from './commands/session.js';
import { registerUi } from './commands/ui.js';
import { registerUp } from './commands/up.js';

/** Every hangar command, not yet parsed (main.ts runs it; the procedure-table test reads it). */
export function buildProgram(): Command {
  const program = new Command('hangar')
    .description('Hangar: persistent terminals, jobs and previews on the machines you own')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();

  registerUp(program);
  registerUi(program);
  registerHosts(program);
  registerSession(program);
  registerAttach(program);
  registerRun(program);
  registerJobs(program);
  registerLogs(program);
  registerArtifacts(program);
  registerPreview(program);
  registerAccount(program);
  registerDevices(program);
  return program;
}
