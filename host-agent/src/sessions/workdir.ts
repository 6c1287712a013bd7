import { constants as fsConstants } from 'node:fs';
import { access, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '@hangar/shared';

/** `~` and `~/…` are the agent user's home; the directory must already exist. */
export async function resolveWorkdir(cwd: string | undefined): Promise<string> {
  let path = cwd ?? '~';
  if (path === '~') path = homedir();
  else if (path.startsWith('~/')) path = join(homedir(), path.slice(2));
  else if (!path.startsWith('/'))
    throw new HangarError('E_BAD_REQUEST', `working directory "${path}" must be absolute or start with ~/`, {
      cwd: path,
    });
  const info = await stat(path).catch(ifMissing(undefined));
  if (!info?.isDirectory()) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `working directory "${path}" does not exist on this host (or is not a directory); create it first or pick another`,
      { cwd: path },
    );
  }
  await access(path, fsConstants.X_OK).catch(() => {
    throw new HangarError('E_BAD_REQUEST', `working directory "${path}" is not accessible to the agent's user`, {
      cwd: path,
    });
  });
  return realpath(path);
}

/** For .catch(): a missing file is an expected answer; any other error still propagates. */
export function ifMissing<T>(value: T): (error: unknown) => T {
  return (error) => {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOTDIR: a path through a regular file is as missing as a path through nothing.
    if (code === 'ENOENT' || code === 'ENOTDIR') return value;
    throw error;
  };
}

/** Writes CLAUDE.md and AGENTS.md; an existing file with other content is the user's and is kept. */
export async function writeInstructions(cwd: string, instructions: string): Promise<void> {
  const files = ['CLAUDE.md', 'AGENTS.md'].map((file) => join(cwd, file));
  for (const file of files) {
    const current = await readFile(file, 'utf8').catch(ifMissing(undefined));
    if (current !== undefined && current !== instructions) {
      throw new HangarError(
        'E_EXISTS',
        `${file} already exists with different content; remove it or leave out the instructions`,
        { path: file },
      );
    }
  }
  for (const file of files) await writeFile(file, instructions);
}
