import type { Command, Option } from 'commander';
import { bundledTable, type CommandSpec, type OptionSpec } from './command-table.js';

type Internals = Command & {
  _actionHandler: unknown;
  _defaultCommandName: string | null;
  _passThroughOptions: boolean;
  _storeOptionsAsProperties: boolean;
  _hidden?: boolean;
};

type OptionInternals = Option & {
  parseArg?: unknown;
  argChoices?: unknown;
  envVar?: unknown;
  presetArg?: unknown;
  conflictsWith: unknown[];
  implied?: unknown;
};

/** The table of `command` and every command under it, from commander's objects. */
export function describeCommand(command: Command): CommandSpec {
  const inside = command as Internals;
  const options = command.options.map((option): OptionSpec => {
    const o = option as OptionInternals;
    return {
      ...(o.long !== undefined ? { long: o.long } : {}),
      ...(o.short !== undefined ? { short: o.short } : {}),
      key: o.attributeName(),
      value: o.required,
      negate: o.negate,
      custom:
        o.optional ||
        o.variadic ||
        o.mandatory ||
        o.parseArg !== undefined ||
        o.argChoices !== undefined ||
        o.envVar !== undefined ||
        o.presetArg !== undefined ||
        o.conflictsWith.length > 0 ||
        o.implied !== undefined,
      ...(o.hidden ? { hidden: true } : {}),
    };
  });
  const defaults: Record<string, string | boolean> = {};
  let plainDefaults = true;
  for (const [key, value] of Object.entries(command.opts())) {
    if (typeof value === 'string' || typeof value === 'boolean') defaults[key] = value;
    else if (value !== undefined) plainDefaults = false;
  }
  return {
    name: command.name(),
    aliases: command.aliases(),
    action: inside._actionHandler !== null && inside._actionHandler !== undefined,
    args: command.registeredArguments.map((argument) => ({
      name: argument.name(),
      required: argument.required,
      variadic: argument.variadic,
    })),
    options,
    defaults,
    plain:
      plainDefaults &&
      // A required option (`--name <name>` of session new) is checked by commander.
      !command.options.some((option) => option.mandatory) &&
      inside._defaultCommandName === null &&
      !inside._passThroughOptions &&
      !inside._storeOptionsAsProperties &&
      // An argument with a parser or choices of its own.
      !command.registeredArguments.some(
        (argument) =>
          (argument as unknown as { parseArg?: unknown }).parseArg !== undefined ||
          (argument as unknown as { argChoices?: unknown }).argChoices !== undefined ||
          argument.defaultValue !== undefined,
      ),
    commands: command.commands.map(describeCommand),
  };
}

/** The table of every command: the bundle's, or read from the commander program (the tsc build). */
export async function commandTable(): Promise<CommandSpec> {
  const bundled = bundledTable();
  if (bundled) return bundled;
  const { buildProgram } = await import('./program.js');
  return describeCommand(await buildProgram());
}
