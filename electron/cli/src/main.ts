import { Command } from 'commander';
import { registerArtifacts } from './commands/artifacts.js';
import { registerAttach } from './commands/attach.js';
import { registerHosts } from './commands/hosts.js';
import { registerJobs } from './commands/jobs.js';
import { registerLogs } from './commands/logs.js';
import { registerPreview } from './commands/preview.js';
import { registerRun } from './commands/run.js';
import { registerSession } from './commands/session.js';
import { registerUi } from './commands/ui.js';
import { registerUp } from './commands/up.js';
import { reportError } from './exit-codes.js';

// `hangar preview ls | head -3`: the reader leaving is the end of the output, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

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

program.exitOverride((error) => {
  process.exit(error.exitCode === 0 ? 0 : 2);
});

program.parseAsync(process.argv).catch((error: unknown) => {
  process.exitCode = reportError(error);
});
