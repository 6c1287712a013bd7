import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { usePairedHost } from '../support/paired-host.js';
import { hangarFrom, type CliResult } from '../support/processes.js';

/** An empty folder and a fresh `git init` are workspaces; a whole home directory is not. */
describe('hangar run from a folder with nothing in it', () => {
  // One host for these: each job runs in a directory of its own on it, and each case looks at its
  // own job's output and status only.
  const box = usePairedHost({ shared: true });
  const cleanups = useCleanups();
  const folder = () => dirFor(cleanups, 'folder');

  /** `hangar …` run from `cwd`, as a user in that folder would, with `home` as their $HOME. */
  const hangarIn = (cwd: string, args: string[], home = process.env['HOME'] ?? cwd): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd, env: { HOME: home } });
  const run = (cwd: string, extra: string[] = [], home?: string) =>
    hangarIn(cwd, ['run', '--host', 'box', '--executor', 'shell', '-c', 'ls -A | wc -l; exit 7', ...extra], home);

  it('an empty folder runs the job in an empty directory and passes its exit status through', async () => {
    const result = await run(folder());
    expect(result.stderr).not.toContain('no paths specified');
    expect(result).toMatchObject({ code: 7, stdout: '0\n' });
  });

  it('a fresh git init runs the job in an empty directory and passes its exit status through', async () => {
    const repo = folder();
    execFileSync('git', ['init', '-q', repo]);
    const result = await run(repo);
    expect(result).toMatchObject({ code: 7, stdout: '0\n' });
  });

  it('the home directory outside git is refused with what to do instead; --no-workspace runs there', async () => {
    const home = folder();
    writeFileSync(join(home, '.bash_history'), 'ssh root@example\n');
    mkdirSync(join(home, 'Downloads'));
    const refused = await run(home, [], home);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('is your home directory and not inside git');
    expect(refused.stderr).toContain('--dir <folder>');
    expect(refused.stderr).toContain('--no-workspace');
    // The same from a project folder, naming home with --dir.
    expect((await run(folder(), ['--dir', home], home)).code).toBe(2);

    const empty = await run(home, ['--no-workspace'], home);
    expect(empty).toMatchObject({ code: 7, stdout: '0\n' });
    expect(empty.stderr).not.toContain('uploading');
  });

  it('--no-workspace with --dir is refused as bad input', async () => {
    const result = await run(folder(), ['--no-workspace', '--dir', 'src']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--no-workspace');
  });
});
