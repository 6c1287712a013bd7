import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { HangarError } from '@hangar/shared';

/**
 * Refuses a session whose program cannot start, before tmux is asked: a command that is not found
 * exits at once and takes its session with it, so "created session …" would be followed by "no
 * session" on attach. ssh says `sh: 1: foo: not found` and exits 127; we say so before creating
 * anything. The lookup is the one the session's shell does ("$@" in sh, with the session's PATH and
 * working directory), so builtins and functions pass as they would run.
 */
export async function assertProgramRuns(program: string, cwd: string, path: string | undefined): Promise<void> {
  if (program.includes('/')) {
    const file = resolve(cwd, program);
    const found = await stat(file).then(
      (s) => s,
      () => undefined,
    );
    if (!found) throw cannotRun(program, 'no such file');
    if (!found.isFile()) throw cannotRun(program, 'it is not a file');
    const runnable = await access(file, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!runnable) throw cannotRun(program, 'it is not executable (chmod +x)');
    return;
  }
  const found = await new Promise<boolean>((done) => {
    execFile(
      'sh',
      ['-c', 'command -v "$1" >/dev/null', 'sh', program],
      { cwd, env: { ...process.env, ...(path !== undefined ? { PATH: path } : {}) }, timeout: 10_000 },
      (error) => done(!error),
    );
  });
  if (!found) {
    const searched = path ?? process.env['PATH'] ?? '';
    throw cannotRun(program, `not found in PATH (${searched})`);
  }
}

function cannotRun(program: string, why: string): HangarError {
  return new HangarError(
    'E_BAD_REQUEST',
    `cannot run ${JSON.stringify(program)} on this host: ${why}; no session was created`,
    { program },
  );
}
