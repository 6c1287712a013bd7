import { CORE_PROCEDURES, type CoreMethod } from '@hangar/shared';
import type { Command } from 'commander';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/program.js';
import { PROCEDURE_USE } from '../src/procedures.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const COMMANDS_DIR = join(ROOT, 'electron/cli/src/commands');
/** The shared helpers the commands drive terminals and logs with (the window uses them too). */
const SHARED_HELPERS = ['shared/src/link/core-terminal.ts', 'shared/src/link/core-job-log.ts'];

function findCommand(program: Command, path: string): Command | undefined {
  let at: Command | undefined = program;
  for (const name of path.split(' ')) at = at?.commands.find((c) => c.name() === name);
  return at;
}

const program = await buildProgram();

describe('the hangar command and the core API have one procedure table', () => {
  const cliCode = [
    ...readdirSync(COMMANDS_DIR).map((file) => readFileSync(join(COMMANDS_DIR, file), 'utf8')),
    ...SHARED_HELPERS.map((file) => readFileSync(join(ROOT, file), 'utf8')),
  ].join('\n');

  it.each(Object.keys(CORE_PROCEDURES) as CoreMethod[])(
    '%s has a hangar command that calls it, or says why none does',
    (method) => {
      const use = PROCEDURE_USE[method];
      expect(use, `${method} is missing from electron/cli/src/procedures.ts`).toBeDefined();
      if ('none' in use) {
        // A reason a reader can act on, not a placeholder.
        expect(use.none.length).toBeGreaterThan(60);
        return;
      }
      expect(use.commands.length).toBeGreaterThan(0);
      for (const path of use.commands) {
        expect(findCommand(program, path), `hangar ${path} (for ${method}) does not exist`).toBeDefined();
      }
      expect(cliCode, `no command's code calls ${method}`).toContain(`'${method}'`);
    },
  );

  it('names no procedure the core does not have', () => {
    expect(Object.keys(PROCEDURE_USE).sort()).toEqual(Object.keys(CORE_PROCEDURES).sort());
  });

  it('every command a user can run is listed, except the ones that serve the core itself', () => {
    const listed = new Set(Object.values(PROCEDURE_USE).flatMap((use) => ('commands' in use ? use.commands : [])));
    const leaves: string[] = [];
    const walk = (command: Command, prefix: string[]) => {
      for (const sub of command.commands) {
        const path = [...prefix, sub.name()];
        if (sub.commands.length === 0) leaves.push(path.join(' '));
        walk(sub, path);
      }
    };
    walk(program, []);
    // hangar up and hangar ui own a core and serve it (the window's doors), and hangar completion
    // prints a script (its __complete calls the core): they call no procedure.
    expect(leaves.filter((path) => !listed.has(path)).sort()).toEqual(['completion', 'ui', 'up']);
  });
});
