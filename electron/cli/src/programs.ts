import { Command } from 'commander';
import { TOP_COMMANDS } from './command-index.js';
import { hangarVersion } from './version.js';

/** The `hangar` program with no commands yet: what every way of building it shares. */
export function rootProgram(): Command {
  return new Command('hangar')
    .description('Hangar: persistent terminals, jobs and previews on the machines you own')
    .version(hangarVersion(), '-V, --version', 'print the version of hangar')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
}

/**
 * The program for these arguments: with the files of the one command they name (each file
 * registered once, in TOP_COMMANDS order), or, for `--help`, `--version`, nothing or a name that
 * is not a command, a listing of every command from TOP_COMMANDS alone.
 */
export async function programFor(args: readonly string[]): Promise<Command> {
  const words = args.filter((arg) => !arg.startsWith('-'));
  // `hangar help session` is `hangar session --help`.
  const name = words[0] === 'help' ? words[1] : words[0];
  const named = TOP_COMMANDS.find((command) => command.name === name);
  if (named) {
    const program = rootProgram();
    (await named.load())(program);
    return program;
  }
  return overviewProgram();
}

/** Every top-level command by name and description only: what `hangar --help` shows. */
export function overviewProgram(): Command {
  const program = rootProgram();
  const terms = new Map<string, string>();
  for (const command of TOP_COMMANDS) {
    program.command(command.name, command.hidden ? { hidden: true } : {}).description(command.description);
    terms.set(command.name, command.term);
  }
  const help = program.createHelp();
  program.configureHelp({
    subcommandTerm: (command) => terms.get(command.name()) ?? help.subcommandTerm(command),
  });
  return program;
}
