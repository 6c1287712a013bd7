import { describe, expect, it } from 'vitest';
import { TOP_COMMANDS } from '../src/command-index.js';
import { overviewProgram, programFor } from '../src/programs.js';
import { buildProgram } from '../src/program.js';

describe('hangar loads only the command it runs', () => {
  it('hangar --help from the index alone reads exactly as with every command file loaded', async () => {
    const full = await buildProgram();
    expect(overviewProgram().helpInformation()).toBe(full.helpInformation());
  });

  it('the index lists every top-level command the files register, in their order', async () => {
    const full = await buildProgram();
    expect(TOP_COMMANDS.map((c) => c.name)).toEqual(full.commands.map((c) => c.name()));
  });

  it.each(TOP_COMMANDS.map((c) => [c.name] as const))('hangar %s loads the file that registers it', async (name) => {
    const program = await programFor([name, '--help']);
    expect(program.commands.map((c) => c.name())).toContain(name);
  });
});
