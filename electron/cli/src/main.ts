import { Command } from 'commander';
import { registerAttach } from './commands/attach.js';
import { registerHosts } from './commands/hosts.js';
import { registerSession } from './commands/session.js';
import { registerUp } from './commands/up.js';
import { reportError } from './exit-codes.js';

const program = new Command('hangar')
  .description('Hangar: persistent terminals, jobs and previews on the machines you own')
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions();

registerUp(program);
registerHosts(program);
registerSession(program);
registerAttach(program);

program.exitOverride((error) => {
  process.exit(error.exitCode === 0 ? 0 : 2);
});

program.parseAsync(process.argv).catch((error: unknown) => {
  process.exitCode = reportError(error);
});
