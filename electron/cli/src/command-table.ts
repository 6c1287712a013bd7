import type { Command } from 'commander';

/**
 * The hangar command's definitions as data (issue 18): names, arguments and options of every
 * command, read from the commander program at build time (build/cli-bundle puts it in the bundle
 * as HANGAR_COMMAND_TABLE). A plain call of a command (`hangar session ls`, `hangar jobs --json`)
 * is then dispatched from it without loading commander or building a program: fastCall() reads
 * the arguments, and the command file's own action runs, found by registering the file on a
 * recorder (actionsOf) instead of a commander program. Anything fastCall is not certain to read
 * exactly as commander would (help, an unknown or repeated option, a missing or extra argument,
 * `--`, `help`, an option with its own parser) is left to commander, whose messages and exit codes
 * therefore stay the only ones. electron/cli/test/command-table.test.ts checks both against
 * commander's own reading of the same arguments. The table is made by describeCommand
 * (describe-commands.ts, not in the bundle's way).
 */
export interface CommandSpec {
  name: string;
  aliases: string[];
  /** It has an action of its own (a command with subcommands may also run itself: `hangar jobs`). */
  action: boolean;
  args: { name: string; required: boolean; variadic: boolean }[];
  options: OptionSpec[];
  /** The options' values before any argument is read: defaults, and true for each --no-x. */
  defaults: Record<string, string | boolean>;
  /** Nothing fastCall cannot read as commander would (see describeCommand); else commander reads every call. */
  plain: boolean;
  commands: CommandSpec[];
}

export interface OptionSpec {
  long?: string;
  short?: string;
  /** Its key in the action's options. */
  key: string;
  /** `--json`: a flag; `--host <host>`: one value. */
  value: boolean;
  negate: boolean;
  /** A parser of its own (`--env` collects), choices, an optional value…: when given, commander reads the call. */
  custom: boolean;
  /** Hidden from help (an old name kept working): not offered by completion. */
  hidden?: boolean;
}

/** A call fastCall read: the command's path (`['session', 'ls']`) and its action's arguments. */
export interface FastCall {
  path: string[];
  values: unknown[];
}

/**
 * `args` (after `hangar`) as commander would read them, or undefined when commander is to read
 * them (then it also says what is wrong). Words name commands from the top; what follows the
 * command's name are its arguments and its own plain options (`--json`, `--host h`, `--host=h`).
 */
export function fastCall(table: CommandSpec, args: readonly string[]): FastCall | undefined {
  let command = table;
  const path: string[] = [];
  let at = 0;
  // The commands named: each word that names a subcommand, before any argument.
  for (; at < args.length; at++) {
    const word = args[at]!;
    const sub = command.commands.find((c) => c.name === word || c.aliases.includes(word));
    if (sub) {
      // A command between the top and the one run, with options of its own: commander reads those.
      if (command !== table && command.options.length > 0) return undefined;
      command = sub;
      path.push(sub.name);
      continue;
    }
    // `hangar session help ls`, or a command that only lists its subcommands.
    if (word === 'help' && command.commands.length > 0) return undefined;
    break;
  }
  if (command === table || !command.action || !command.plain) return undefined;

  const positional: string[] = [];
  const given = new Map<string, string | boolean>();
  for (; at < args.length; at++) {
    const word = args[at]!;
    if (!word.startsWith('-')) {
      positional.push(word);
      continue;
    }
    // `--`, `-h`, `--help`, a short option, an unknown one: commander's.
    const equals = word.indexOf('=');
    const flag = equals > 0 ? word.slice(0, equals) : word;
    const option = command.options.find((o) => o.long === flag);
    if (!option || option.custom || given.has(option.key)) return undefined;
    if (option.value) {
      const value = equals > 0 ? word.slice(equals + 1) : args[++at];
      // No value, or one commander might read otherwise (it takes the next word whatever it is).
      if (value === undefined || (equals < 0 && value.startsWith('-'))) return undefined;
      given.set(option.key, value);
    } else {
      if (equals > 0) return undefined;
      given.set(option.key, !option.negate);
    }
  }

  const values: unknown[] = [];
  for (const [index, argument] of command.args.entries()) {
    if (argument.variadic) {
      values.push(positional.slice(index));
      continue;
    }
    const value = positional[index];
    if (value === undefined && argument.required) return undefined;
    values.push(value);
  }
  const last = command.args.at(-1);
  if (!last?.variadic && positional.length > command.args.length) return undefined;
  if (last?.variadic && last.required && positional.length < command.args.length) return undefined;
  values.push({ ...command.defaults, ...Object.fromEntries(given) });
  return { path, values };
}

type Action = (...values: unknown[]) => unknown;

/**
 * The actions a command file registers, by command path (`session ls`), read by registering it on
 * a recorder that stands in for a commander program: every other call of the chain (description,
 * options, arguments, help text) is taken and ignored, as the table holds those.
 */
export function actionsOf(register: (program: Command) => void): Map<string, Action> {
  const actions = new Map<string, Action>();
  const recorder = (path: string[]): unknown => {
    const self: unknown = new Proxy(
      {},
      {
        get: (_target, key) => {
          if (key === 'command') return (nameAndArgs: string) => recorder([...path, nameAndArgs.split(' ')[0]!]);
          if (key === 'action')
            return (action: Action) => {
              actions.set(path.join(' '), action);
              return self;
            };
          return () => self;
        },
      },
    );
    return self;
  };
  register(recorder([]) as Command);
  return actions;
}

/**
 * Set by build/cli-bundle in each bundle file: the table of the commands that file runs (all of
 * them in the completion's); undefined in the tsc build, where commander reads every call.
 */
declare const HANGAR_COMMAND_TABLE: CommandSpec | undefined;

/** The bundle's command table, if this is a bundle. */
export function bundledTable(): CommandSpec | undefined {
  return typeof HANGAR_COMMAND_TABLE === 'object' ? HANGAR_COMMAND_TABLE : undefined;
}
