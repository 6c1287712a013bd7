import { HangarError, taskBranchName, type TaskWorktree } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

/** The worktree of a task with a repo: in the agent's data directory, on its own branch. */
export function taskWorktree(dataDir: string, id: string): TaskWorktree {
  return { branch: taskBranchName(id), path: join(dataDir, 'tasks', id, 'work') };
}

interface GitResult {
  ok: boolean;
  stdout: string;
  /** git's own words when it refuses (`fatal: …`, its stderr on one line), else how it ended. */
  reason: string;
}

/** Runs git with argv only (never a shell), prompts off, in `repo`. */
function git(repo: string, args: string[]): Promise<GitResult> {
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-C', repo, ...args],
      { timeout: 60_000, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
      (error, stdout, stderr) => {
        const said = stderr
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line !== '' && !line.startsWith('Preparing worktree'));
        resolve({
          ok: error === null,
          stdout,
          reason: said.join('; ') || (error ? error.message : ''),
        });
      },
    );
  });
}

/**
 * Makes the task's worktree: `git worktree add -b hangar/task-<8 hex> <path> [<ref>]` in `repo`
 * (an existing directory, resolved). Refused with E_TASK_UNFIT and git's reason when `repo` is not a
 * repository or `ref` is not one of its refs; nothing is left behind then.
 */
export async function addTaskWorktree(
  dataDir: string,
  id: string,
  repo: string,
  ref: string | undefined,
): Promise<TaskWorktree> {
  const worktree = taskWorktree(dataDir, id);
  const inside = await git(repo, ['rev-parse', '--git-dir']);
  if (!inside.ok) {
    throw new HangarError(
      'E_TASK_UNFIT',
      `does not fit: "${repo}" is not a git repository (${inside.reason}); give --repo a repository's directory, or make one there with: git init`,
      { repo },
    );
  }
  // The schema refused a ref starting with "-"; git's own rules are the last word on the rest.
  if (ref !== undefined && !(await git(repo, ['check-ref-format', '--allow-onelevel', ref])).ok) {
    throw new HangarError('E_BAD_REQUEST', `"${ref}" is not a valid git ref (git check-ref-format)`, { ref });
  }
  const taskDir = join(dataDir, 'tasks', id);
  const fresh = !existsSync(taskDir);
  const added = await git(repo, ['worktree', 'add', '-b', worktree.branch, worktree.path, ...(ref ? [ref] : [])]);
  if (!added.ok) {
    if (fresh) await rm(taskDir, { recursive: true, force: true });
    throw new HangarError(
      'E_TASK_UNFIT',
      `does not fit: git could not make its worktree from ${ref === undefined ? 'HEAD' : `"${ref}"`} in ${repo}: ${added.reason}` +
        (ref === undefined ? '' : '; name a branch, tag or commit of that repository with --ref'),
      { repo, ...(ref !== undefined ? { ref } : {}) },
    );
  }
  return worktree;
}
