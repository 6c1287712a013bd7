import type { Command } from 'commander';
import { TOP_COMMANDS } from './command-index.js';
import { rootProgram } from './programs.js';

/**
 * Every hangar command, all files loaded (the procedure-table and command-index tests read it;
 * main.ts loads only the file of the command it runs, through programFor).
 */
export async function buildProgram(): Promise<Command> {
  const program = rootProgram();
  const registered = new Set<() => Promise<unknown>>();
  for (const command of TOP_COMMANDS) {
    if (registered.has(command.load)) continue;
    registered.add(command.load);
    (await command.load())(program);
  }
  return program;
}
