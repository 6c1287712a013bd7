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
function git(repo: string, args: string[], timeout = 60_000): Promise<GitResult> {
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-C', repo, ...args],
      { timeout, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
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

/** A worktree of a big repository can take long to check out: generous, and never inside a claim. */
const WORKTREE_ADD_TIMEOUT_MS = 30 * 60_000;

/**
 * What is cheap to check before a task with a repo is claimed: `repo` (an existing directory,
 * resolved) is a git repository and `ref` (default HEAD) names a commit there. Refused with
 * E_TASK_UNFIT and git's reason otherwise (another host may have it, or it stays queued saying why).
 */
export async function checkTaskRepo(repo: string, ref: string | undefined): Promise<void> {
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
  const commit = await git(repo, ['rev-parse', '--verify', '--quiet', `${ref ?? 'HEAD'}^{commit}`]);
  if (!commit.ok) {
    throw new HangarError(
      'E_TASK_UNFIT',
      ref === undefined
        ? `does not fit: ${repo} has no commit at HEAD to make a worktree from (git rev-parse --verify HEAD); commit there first, or name a branch, tag or commit with --ref`
        : `does not fit: "${ref}" is no branch, tag or commit of ${repo} (git rev-parse --verify); name one with --ref`,
      { repo, ...(ref !== undefined ? { ref } : {}) },
    );
  }
}

/**
 * Makes the task's worktree: `git worktree add -b hangar/task-<8 hex> <path> [<ref>]` in `repo`
 * (checked with checkTaskRepo). When git fails (or is killed at its timeout) what it made is
 * removed: the worktree (`git worktree remove --force`, then `git worktree prune`), the branch
 * when it was git's doing (`git branch -D`), the task's directory; the error carries git's reason.
 */
export async function addTaskWorktree(
  dataDir: string,
  id: string,
  repo: string,
  ref: string | undefined,
): Promise<TaskWorktree> {
  const worktree = taskWorktree(dataDir, id);
  const taskDir = join(dataDir, 'tasks', id);
  const fresh = !existsSync(taskDir);
  const branchBefore = (await git(repo, ['rev-parse', '--verify', '--quiet', `refs/heads/${worktree.branch}`])).ok;
  const added = await git(
    repo,
    ['worktree', 'add', '-b', worktree.branch, worktree.path, ...(ref ? [ref] : [])],
    WORKTREE_ADD_TIMEOUT_MS,
  );
  if (!added.ok) {
    await git(repo, ['worktree', 'remove', '--force', worktree.path]);
    await git(repo, ['worktree', 'prune']);
    if (!branchBefore) await git(repo, ['branch', '-D', worktree.branch]);
    if (fresh) await rm(taskDir, { recursive: true, force: true });
    throw new HangarError(
      'E_TASK_UNFIT',
      `git could not make its worktree from ${ref === undefined ? 'HEAD' : `"${ref}"`} in ${repo}: ${added.reason}`,
      { repo, ...(ref !== undefined ? { ref } : {}) },
    );
  }
  return worktree;
}
