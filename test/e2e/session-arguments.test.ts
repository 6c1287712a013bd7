import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, removeDir, tempDir } from '../support/processes.js';

/**
 * What tmux does with a session's environment and working directory on its way to the program:
 * an argument ending in `;` ends a tmux command, `-c` is expanded as a format. Whatever bytes the
 * user gives must reach the session exactly, or be refused with a message naming the field.
 */
const VALUES: Record<string, string> = {
  SEMI: 'x;',
  SEMI_ESCAPED: 'x\\;',
  LONE_SEMI: ';',
  INNER_SEMI: 'a; b',
  QUOTES: `it's "quoted"`,
  DOLLAR: '$HOME ${PATH} $(id) `id`',
  BACKSLASH: 'C:\\path\\',
  NEWLINE: 'line one\nline two\n',
  SPACES: '  lead and trail  ',
  UNICODE: 'héllo ✓ 日本 🚀',
  FORMAT: '#{session_name} ## #(id)',
  TILDE: '~/not-expanded',
  EMPTY: '',
};

/** The session prints its environment and cwd once, base64 (no terminal can mangle it), then waits. */
const REPORT = [
  process.execPath,
  '-e',
  `const names = ${JSON.stringify(Object.keys(VALUES))};
   const env = Object.fromEntries(names.map((n) => [n, process.env[n] ?? null]));
   const text = Buffer.from(JSON.stringify({ env, cwd: process.cwd() })).toString('base64');
   process.stdout.write('<<' + text + '>>\\n');
   setTimeout(() => {}, 300000);`,
];

describe('session environment and working directory reach the session exactly', () => {
  const box = usePairedHost();
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  /** What the session reported, from its output log (`<data>/sessions/<name>/output.log`). */
  const report = async (name: string): Promise<{ env: Record<string, string | null>; cwd: string }> => {
    const log = join(box.dataDir, 'sessions', name, 'output.log');
    const deadline = Date.now() + 15_000;
    for (;;) {
      const match = /<<([A-Za-z0-9+/=]+)>>/.exec(readFileSync(log, 'utf8'));
      if (match) return JSON.parse(Buffer.from(match[1]!, 'base64').toString('utf8'));
      if (Date.now() > deadline) throw new Error(`no report in ${log}: ${readFileSync(log, 'utf8')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  it("values with ; quotes $ backslashes newlines spaces unicode and tmux's # formats arrive as given", async () => {
    const env = Object.entries(VALUES).flatMap(([key, value]) => ['--env', `${key}=${value}`]);
    const created = await hangar(box.home, ['session', 'new', 'box', '--name', 'e1', ...env, '--', ...REPORT]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect((await report('e1')).env).toEqual(VALUES);
  });

  it('a working directory with such characters, ending in ;, is where the session starts', async () => {
    const parent = tempDir('cwd');
    dirs.push(parent);
    const cwd = join(parent, `dir é ✓ 'q' "d" $HOME #{session_name} ## \\b\nline two;`);
    mkdirSync(cwd);
    const created = await hangar(box.home, ['session', 'new', 'box', '--name', 'c1', '--cwd', cwd, '--', ...REPORT]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect((await report('c1')).cwd).toBe(cwd);
    const listed = JSON.parse((await hangar(box.home, ['session', 'ls', 'box', '--json'])).stdout) as {
      sessions: { name: string; cwd: string }[];
    }[];
    expect(listed[0]!.sessions.find((s) => s.name === 'c1')?.cwd).toBe(cwd);
  });

  it('a name that is not an environment name, or more than tmux can carry, is refused naming why; nothing is created', async () => {
    const badName = await hangar(box.home, ['session', 'new', 'box', '--name', 'n2', '--env', '1A=x', '--', 'true']);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/env.*expected an environment variable name/);
    const tooLong = await hangar(box.home, [
      'session',
      'new',
      'box',
      '--name',
      'n3',
      '--env',
      `BIG=${'x'.repeat(20_000)}`,
      '--',
      'true',
    ]);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toContain('bytes for tmux');
    const listed = JSON.parse((await hangar(box.home, ['session', 'ls', 'box', '--json'])).stdout) as {
      sessions: unknown[];
    }[];
    expect(listed[0]!.sessions).toEqual([]);
  });
});

describe('session new --instructions', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  it('a file that is not a regular one, or more than 1 MiB, is refused before anything is read whole or sent', async () => {
    const home = tempDir('home');
    const dir = tempDir('instructions');
    dirs.push(home, dir);
    const big = join(dir, 'BIG.md');
    writeFileSync(big, 'x'.repeat(2 * 1024 * 1024));
    const session = (file: string) =>
      hangar(home, ['session', 'new', 'box', '--name', 'n', '--instructions', file, '--', 'true']);
    // Was: the whole file sent to the core, refused as "sessions.create: instructions: Too big".
    expect(await session(big)).toMatchObject({
      code: 2,
      stderr: `hangar: --instructions ${big}: 2097152 bytes; at most 1 MiB\n`,
    });
    // Was: read for ever (memory growing until the command died).
    expect(await session('/dev/zero')).toMatchObject({
      code: 2,
      stderr: 'hangar: --instructions /dev/zero: not a regular file\n',
    });
    expect(await session(dir)).toMatchObject({
      code: 2,
      stderr: `hangar: --instructions ${dir}: not a regular file\n`,
    });
  });
});
