import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { TOP_COMMANDS, type Register } from '../src/command-index.js';
import { actionsOf, fastCall, type CommandSpec, type FastCall } from '../src/command-table.js';
import { describeCommand } from '../src/describe-commands.js';
import { buildProgram } from '../src/program.js';

const table = describeCommand(await buildProgram());

/** Every command of the table with its path (`session ls`). */
function everyCommand(spec: CommandSpec, path: string[] = []): { path: string[]; spec: CommandSpec }[] {
  return [
    ...(path.length > 0 ? [{ path, spec }] : []),
    ...spec.commands.flatMap((sub) => everyCommand(sub, [...path, sub.name])),
  ];
}

/**
 * What commander does with `args`: the command whose action it runs and that action's arguments
 * (without the Command it passes last), or `error` (a usage error, help, the version).
 */
async function commanderReads(args: string[]): Promise<FastCall | 'error'> {
  const program = await buildProgram();
  let ran: FastCall | undefined;
  const visit = (command: Command, path: string[]): void => {
    command.exitOverride();
    command.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    const handler = (command as unknown as { _actionHandler: unknown })._actionHandler;
    if (handler)
      command.action((...values: unknown[]) => {
        ran = { path, values: values.slice(0, -1) };
      });
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch {
    return 'error';
  }
  return ran ?? 'error';
}

/** Calls of each command: plain ones, and the kinds fastCall leaves to commander. */
function callsOf(path: string[], spec: CommandSpec): string[][] {
  const required = spec.args.filter((a) => a.required).map((a) => `${a.name}-value`);
  const all = spec.args.map((a) => `${a.name}-value`);
  const calls: string[][] = [
    [...path],
    [...path, ...required],
    [...path, ...all],
    [...path, ...all, 'extra'],
    [...path, ...all, 'more', 'extra'],
    [...path, '--help'],
    [...path, ...required, '-h'],
    [...path, ...required, '--bogus'],
    [...path, ...required, '--'],
    [...path, '--', ...required],
    [...path, 'help'],
    ['--version', ...path],
  ];
  for (const option of spec.options) {
    if (!option.long) continue;
    calls.push([...path, ...required, option.long]);
    calls.push([...path, option.long, 'value-x', ...required]);
    calls.push([...path, ...required, `${option.long}=value-y`]);
    calls.push([...path, ...required, option.long, '-x']);
    calls.push([...path, ...required, option.long, 'v1', option.long, 'v2']);
    calls.push([...path, ...required, option.long, option.long]);
    if (option.short) calls.push([...path, ...required, option.short, 'value-z']);
  }
  return calls;
}

const commands = everyCommand(table);
const cases = commands.flatMap(({ path, spec }) => callsOf(path, spec).map((args) => [args.join(' '), args] as const));

describe('a call read from the command table is read as commander reads it', () => {
  it.each(cases)('hangar %s', async (_name, args) => {
    const fast = fastCall(table, args);
    // Left to commander: nothing to compare (commander then reads it as before).
    if (fast === undefined) return;
    expect(await commanderReads([...args])).toEqual(fast);
  });

  it('the listings are read from the table (they load no commander)', () => {
    for (const args of [
      ['session', 'ls'],
      ['session', 'ls', 'h0', '--json'],
      ['jobs'],
      ['jobs', '--host', 'h0', '--limit=5', '--json'],
      ['hosts', 'ls'],
      ['__complete', 'attach', ''],
      ['cancel', 'j1', '--no-wait'],
    ])
      expect(fastCall(table, args), args.join(' ')).toBeDefined();
  });

  it('a fair share of the plain calls is read from the table, not all left to commander', () => {
    const read = cases.filter(([, args]) => fastCall(table, args) !== undefined).length;
    expect(read).toBeGreaterThan(cases.length / 10);
  });
});

describe('each command file runs, from the table, the action it registers with commander', () => {
  const files = new Map<() => Promise<Register>, string[]>();
  for (const top of TOP_COMMANDS) files.set(top.load, [...(files.get(top.load) ?? []), top.name]);

  it.each([...files].map(([load, names]) => [names.join(', '), load, names] as const))(
    'the file of %s',
    async (_name, load, names) => {
      const recorded = [...actionsOf(await load()).keys()].sort();
      const registered = commands
        .filter(({ path, spec }) => names.includes(path[0]!) && spec.action)
        .map(({ path }) => path.join(' '))
        .sort();
      expect(recorded).toEqual(registered);
    },
  );
});
