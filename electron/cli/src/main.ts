import { reportError } from './exit-codes.js';
import { buildProgram } from './program.js';

// `hangar preview ls | head -3`: the reader leaving is the end of the output, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const program = buildProgram();

program.exitOverride((error) => {
  process.exit(error.exitCode === 0 ? 0 : 2);
});

program.parseAsync(process.argv).catch((error: unknown) => {
  process.exitCode = reportError(error);
});
