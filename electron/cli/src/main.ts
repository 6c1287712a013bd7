import { programFor } from './command-index.js';

// `hangar preview ls | head -3`: the reader leaving is the end of the output, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const reportError = async (error: unknown): Promise<number> => (await import('./exit-codes.js')).reportError(error);

// Only what the named command needs is loaded (command-index.ts): `hangar --help` and
// `--version` answer about as fast as node starts.
programFor(process.argv.slice(2))
  .then((program) => {
    program.exitOverride((error) => {
      process.exit(error.exitCode === 0 ? 0 : 2);
    });
    return program.parseAsync(process.argv);
  })
  .catch(async (error: unknown) => {
    process.exitCode = await reportError(error);
  });
