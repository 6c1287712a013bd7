import { isHangarError, type TaskInfo } from '@hangar/shared';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/index.js';
import { usePairedHost } from '../support/paired-host.js';
import { ROOT, hangar, removeDir, tempDir } from '../support/processes.js';
import { until } from '../support/until.js';
import { randomBytes } from 'node:crypto';

/**
 * Agent tasks with a repo: each claimed task works in a git worktree of its own, on branch
 * hangar/task-<8 hex>, so two agents on one repository never edit the same files. Real git.
 */
const git = (repo: string, ...args: string[]): string =>
  execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
    encoding: 'utf8',
  });

/** A repository with one commit on main, in a temp dir that goes into `dirs` (removed after). */
function repoWithOneCommit(dirs: string[]): string {
  const repo = tempDir('repo');
  dirs.push(repo);
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'README'), 'main\n');
  git(repo, 'add', 'README');
  git(repo, 'commit', '-q', '-m', 'main');
  return repo;
}

describe('agent tasks in git worktrees', () => {
  const box = usePairedHost({ agent: { maxSessions: 4, extraArgs: ['--max-tasks', '2'] } });
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(removeDir));

  const newRepo = (): string => repoWithOneCommit(dirs);
  const hangarBranches = (repo: string) => git(repo, 'branch', '--list', 'hangar/*', '--format=%(refname:short)');
  const add = async (args: string[]): Promise<TaskInfo> => {
    const added = await hangar(box.home, ['task', 'add', '--json', ...args]);
    expect(added.code, added.stderr).toBe(0);
    return JSON.parse(added.stdout) as TaskInfo;
  };
  const waitFor = async (id: string, state: string): Promise<TaskInfo> => {
    const deadline = Date.now() + 15_000;
    let last: TaskInfo | undefined;
    while (Date.now() < deadline) {
      last = JSON.parse((await hangar(box.home, ['task', 'show', id, '--json'])).stdout) as TaskInfo;
      if (last.state === state) return last;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    throw new Error(`task ${id} never became ${state}; last: ${JSON.stringify(last)}`);
  };

  it('two tasks on one repository run in two worktrees on two branches, which stay after they end', async () => {
    const repo = newRepo();
    git(repo, 'checkout', '-q', '-b', 'feature');
    writeFileSync(join(repo, 'FEATURE'), 'feature\n');
    git(repo, 'add', 'FEATURE');
    git(repo, 'commit', '-q', '-m', 'feature');
    git(repo, 'checkout', '-q', 'main');
    // The prompt is sh's $0: each agent writes the same file name, in its own worktree.
    const agent = ['--', 'sh', '-c', 'echo "$0" > note.txt && git rev-parse --abbrev-ref HEAD > branch.txt && sleep 1'];
    const one = await add(['first', '--repo', repo, ...agent]);
    const two = await add(['second', '--repo', repo, '--ref', 'feature', ...agent]);
    expect(one.host).toBe('box');
    expect(two.host).toBe('box');
    const done = [await waitFor(one.id, 'completed'), await waitFor(two.id, 'completed')];

    const [first, second] = done.map((task) => task.worktree!);
    expect(first).toEqual({
      branch: `hangar/task-${one.id.slice(2, 10)}`,
      path: join(box.dataDir, 'tasks', one.id, 'work'),
    });
    expect(second).toEqual({
      branch: `hangar/task-${two.id.slice(2, 10)}`,
      path: join(box.dataDir, 'tasks', two.id, 'work'),
    });
    expect(readFileSync(join(first!.path, 'note.txt'), 'utf8')).toBe('first\n');
    expect(readFileSync(join(second!.path, 'note.txt'), 'utf8')).toBe('second\n');
    expect(readFileSync(join(first!.path, 'branch.txt'), 'utf8')).toBe(`${first!.branch}\n`);
    expect(readFileSync(join(second!.path, 'branch.txt'), 'utf8')).toBe(`${second!.branch}\n`);
    expect(existsSync(join(first!.path, 'FEATURE'))).toBe(false); // from HEAD (main)
    expect(existsSync(join(second!.path, 'FEATURE'))).toBe(true); // from --ref feature
    expect(existsSync(join(repo, 'note.txt'))).toBe(false);
    expect(hangarBranches(repo).split('\n').filter(Boolean).sort()).toEqual([first!.branch, second!.branch].sort());
    const worktrees = git(repo, 'worktree', 'list', '--porcelain');
    expect(worktrees).toContain(`worktree ${first!.path}\n`);
    expect(worktrees).toContain(`worktree ${second!.path}\n`);

    const shown = await hangar(box.home, ['task', 'show', two.id]);
    expect(shown.stdout).toContain(`repo      ${repo} at feature\n`);
    expect(shown.stdout).toContain(`branch    ${second!.branch}\n`);
    expect(shown.stdout).toContain(`worktree  ${second!.path}\n`);

    // task ls shows each one's branch, in a column of its own.
    const listed = await hangar(box.home, ['task', 'ls']);
    expect(listed.code, listed.stderr).toBe(0);
    const header = listed.stdout.split('\n')[0]!;
    expect(header).toMatch(/\bBRANCH\b/);
    for (const [task, worktree] of [
      [one, first!],
      [two, second!],
    ] as const) {
      const row = listed.stdout.split('\n').find((line) => line.startsWith(task.id))!;
      expect(row.slice(header.indexOf('BRANCH')).split(/\s+/)[0]).toBe(worktree.branch);
    }
  });

  it('an unknown ref or a directory that is no repository is refused at the claim with the reason, leaving nothing behind', async () => {
    const repo = newRepo();
    const unknown = await add(['go', '--repo', repo, '--ref', 'no-such-branch', '--', 'true']);
    expect(unknown.state).toBe('queued');
    expect(unknown.reason).toMatch(
      new RegExp(
        `box: does not fit: "no-such-branch" is no branch, tag or commit of ${repo} \\(git rev-parse --verify\\)`,
      ),
    );
    expect(hangarBranches(repo)).toBe('');
    expect(existsSync(join(box.dataDir, 'tasks', unknown.id))).toBe(false);
    expect(git(repo, 'worktree', 'list', '--porcelain').match(/^worktree /gm)).toHaveLength(1);

    const plain = tempDir('plain');
    dirs.push(plain);
    const notRepo = await add(['go', '--repo', plain, '--', 'true']);
    expect(notRepo.state).toBe('queued');
    expect(notRepo.reason).toContain(`"${plain}" is not a git repository (fatal: not a git repository`);
    expect(notRepo.reason).toContain('git init');
  });

  it('a ref git would read as an option, or not a ref at all, is refused before anything is queued; so are --cwd with --repo', async () => {
    const repo = newRepo();
    for (const ref of ['--upload-pack=touch /tmp/hangar-pwned', '-x']) {
      const refused = await hangar(box.home, ['task', 'add', 'go', '--repo', repo, `--ref=${ref}`]);
      expect(refused.code, refused.stdout).toBe(2);
      expect(refused.stderr).toContain('a ref may not start with "-" (git would read it as an option)');
    }
    const dots = await hangar(box.home, ['task', 'add', 'go', '--repo', repo, '--ref', 'main..x']);
    expect(dots.code).toBe(2);
    expect(dots.stderr).toContain('not a valid git ref (git check-ref-format)');
    const both = await hangar(box.home, ['task', 'add', 'go', '--repo', repo, '--cwd', repo]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--cwd and --repo exclude each other');
    const { queued } = JSON.parse((await hangar(box.home, ['task', 'ls', '--json'])).stdout) as { queued: TaskInfo[] };
    expect(queued.filter((t) => t.spec.repo === repo)).toEqual([]);

    // The host refuses one too, whoever sends it.
    const core = await HangarCore.open({ home: box.home });
    try {
      const claim = core
        .connection('box')
        .call('task.claim', { id: 't-00000000000000aa', spec: { prompt: 'go', repo, ref: '-x' }, created_at: 1 });
      const error = await claim.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isHangarError(error) && error.message).toContain('a ref may not start with "-"');
    } finally {
      await core.dispose();
    }
    expect(hangarBranches(repo)).toBe('');
    expect(existsSync('/tmp/hangar-pwned')).toBe(false);
  });
});

describe('a task whose worktree takes long, or fails, to make', () => {
  // A stand-in git on the agent's PATH: its `worktree add` waits or fails as the test says.
  const control = tempDir('git-control');
  // One session: a task whose worktree is being made holds it.
  const box = usePairedHost({
    agent: {
      maxSessions: 1,
      env: {
        PATH: `${join(ROOT, 'test', 'fixtures', 'slow-git')}:${process.env['PATH']}`,
        HANGAR_TEST_GIT_CONTROL: control,
        HANGAR_TEST_REAL_GIT: execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim(),
      },
    },
  });
  const dirs: string[] = [control];
  let core: HangarCore | undefined;
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
    rmSync(join(control, 'hold'), { force: true });
    rmSync(join(control, 'fail'), { force: true });
  });
  afterAll(() => dirs.forEach(removeDir));

  const newRepo = (): string => repoWithOneCommit(dirs);
  const claim = async (repo: string): Promise<TaskInfo> => {
    core ??= await HangarCore.open({ home: box.home });
    return core.connection('box').call('task.claim', {
      id: `t-${randomBytes(8).toString('hex')}`,
      spec: { prompt: 'go', repo, agent: ['sh', '-c', 'git rev-parse --abbrev-ref HEAD > branch.txt'] },
      created_at: Date.now(),
    });
  };
  const settled = (id: string) =>
    until(async () => {
      const task = await core!.connection('box').call('task.get', { id });
      return ['completed', 'error', 'cancelled'].includes(task.state) ? task : undefined;
    }, `task ${id} ended`);

  it('is claimed at once, starting; it runs once the worktree is made', async () => {
    const repo = newRepo();
    mkdirSync(control, { recursive: true });
    writeFileSync(join(control, 'hold'), '');
    // git's checkout is held: the claim is answered all the same.
    const claimed = await claim(repo);
    expect(claimed.state).toBe('starting');
    expect(existsSync(claimed.worktree!.path)).toBe(false);
    rmSync(join(control, 'hold'));
    const done = await settled(claimed.id);
    expect(done).toMatchObject({ state: 'completed', reason: null });
    expect(readFileSync(join(done.worktree!.path, 'branch.txt'), 'utf8')).toBe(`${done.worktree!.branch}\n`);
  });

  it('a task still making its worktree holds its session: the host at its --max-sessions refuses another', async () => {
    const repo = newRepo();
    mkdirSync(control, { recursive: true });
    writeFileSync(join(control, 'hold'), '');
    const first = await claim(repo);
    expect(first.state).toBe('starting');
    const refused = await claim(repo).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isHangarError(refused) && refused.code).toBe('E_TASK_LIMIT');
    expect(isHangarError(refused) && refused.message).toContain(
      'runs 1 sessions already, its limit (hangar-agent serve --max-sessions 1)',
    );
    // Nor does a session of the user's take it meanwhile (the task's own would then be refused).
    const taken = await core!
      .connection('box')
      .call('session.create', { name: 'other', command: ['sleep', '60'] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isHangarError(taken) && taken.code).toBe('E_SESSION_LIMIT');
    expect(isHangarError(taken) && taken.message).toContain(
      'this host already runs 1 sessions (1 of them a task’s, still being made), the limit is 1',
    );
    rmSync(join(control, 'hold'));
    expect((await settled(first.id)).state).toBe('completed');
  });

  it('ends in error with git’s reason when git fails, its branch and worktree removed', async () => {
    const repo = newRepo();
    // git's words are long: the task carries the first 4096 characters of its reason.
    writeFileSync(join(control, 'fail'), `: ${'x'.repeat(5000)}`);
    const claimed = await claim(repo);
    expect(claimed.state).toBe('starting');
    const failed = await settled(claimed.id);
    expect(failed.state).toBe('error');
    expect(failed.reason).toContain(
      `git could not make its worktree from HEAD in ${repo}: fatal: stand-in git gave up after the checkout`,
    );
    expect(failed.reason!.length).toBe(4096);
    expect(failed.reason!.endsWith('x…')).toBe(true);
    expect(hangarBranches(repo)).toBe('');
    expect(git(repo, 'worktree', 'list', '--porcelain').match(/^worktree /gm)).toHaveLength(1);
    expect(existsSync(join(box.dataDir, 'tasks', claimed.id))).toBe(false);
    // It has no worktree (nor branch) to show.
    expect(failed.worktree).toBeUndefined();
    const shown = await hangar(box.home, ['task', 'show', claimed.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`repo      ${repo}\n`);
    expect(shown.stdout).not.toMatch(/^(branch|worktree) /m);
    // The session it held (the host's one) is free again.
    await core!.connection('box').call('session.create', { name: 'after', command: ['sleep', '60'] });
  });
});

const hangarBranches = (repo: string) => git(repo, 'branch', '--list', 'hangar/*', '--format=%(refname:short)');
