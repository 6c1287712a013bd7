import type { Way } from './code-cache.js';
import { hangarVersion } from './version.js';

// `hangar preview ls | head -3`: the reader leaving is the end of the output, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const reportError = async (error: unknown): Promise<number> => (await import('./exit-codes.js')).reportError(error);

// HANGAR_TRACE_KEYS=<directory>: per-hop keystroke timestamps, written there at exit (shared's key-trace).
const traceDir = process.env['HANGAR_TRACE_KEYS'];
const tracing = traceDir ? startTrace(traceDir) : undefined;

async function startTrace(dir: string): Promise<void> {
  const [{ startKeyTrace }, { writeFileSync }, { join }] = await Promise.all([
    import('@hangar/shared'),
    import('node:fs'),
    import('node:path'),
  ]);
  const text = startKeyTrace({ process: 'cli', now: () => Number(process.hrtime.bigint()) / 1e6 });
  process.on('exit', () => writeFileSync(join(dir, `cli-${process.pid}.trace`), text()));
}

/** Commands that work through the core (run.ts openDoor); the others start one, or need none. */
const THROUGH_THE_CORE = new Set([
  'hosts',
  'session',
  'attach',
  'run',
  'jobs',
  'cancel',
  'retry',
  'logs',
  'artifacts',
  'preview',
  'backup',
  'signup',
  'login',
  'logout',
  'account',
  'devices',
  'team',
  '__complete',
]);

const args = process.argv.slice(2);
// Only what the named command needs is loaded (command-index.ts): `hangar --help` and
// `--version` answer about as fast as node starts; a lone --version not even commander's parsing.
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) process.stdout.write(`${hangarVersion()}\n`);
else void runCommand(args);

async function runCommand(args: string[]): Promise<void> {
  try {
    await tracing;
    // The running core is reached while the command loads (run.ts reachEarly).
    if (THROUGH_THE_CORE.has(args[0] ?? '') && !args.some((arg) => arg === '--help' || arg === '-h'))
      void import('./run.js').then(({ reachEarly }) => reachEarly());
    if (await ranFromTable(args)) return;
    noteWay('commander');
    const { programFor } = await import('./programs.js');
    const program = await programFor(args);
    // On every command: commander copies settings into a subcommand only when it is made, and these
    // were made before. A usage error (unknown option, missing argument) exits 2, help 0.
    const usageExit = (error: { exitCode: number }): never => process.exit(error.exitCode === 0 ? 0 : 2);
    const everyCommand = (command: typeof program): (typeof program)[] => [
      command,
      ...command.commands.flatMap(everyCommand),
    ];
    for (const command of everyCommand(program)) command.exitOverride(usageExit);
    await program.parseAsync(process.argv);
  } catch (error) {
    process.exitCode = await reportError(error);
  }
}

/**
 * A plain call (`hangar session ls`, `hangar jobs --json`) read from the bundle's command table and
 * run by the command file's own action: neither commander nor a program is loaded or built (issue
 * 18). False when commander is to read it: the tsc build, help, anything unusual or wrong.
 */
async function ranFromTable(args: string[]): Promise<boolean> {
  const { actionsOf, bundledTable, fastCall } = await import('./command-table.js');
  const table = bundledTable();
  const call = table && fastCall(table, args);
  if (!call) return false;
  const { TOP_COMMANDS } = await import('./command-index.js');
  const top = TOP_COMMANDS.find((command) => command.name === call.path[0]);
  const action = top && actionsOf(await top.load()).get(call.path.join(' '));
  if (!action) return false;
  // Before the action, which may end the process.
  noteWay('table');
  await action(...call.values);
  return true;
}

/**
 * Set by bundle/main.cjs as it runs this bundle (code-cache.ts Way): told which way this run goes,
 * so that its code cache holds the functions of each way the command is run; undefined in the tsc build.
 */
declare const __hangarWay: ((way: Way) => void) | undefined;

function noteWay(way: Way): void {
  if (typeof __hangarWay === 'function') __hangarWay(way);
}
