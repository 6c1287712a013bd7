import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SessionCreateParams } from '@hangar/shared';
import { useCleanups } from '../../../test/support/cleanups.js';
import { useTestHost, waitFor, type TestHost } from './fixture.js';

let host: TestHost;
useTestHost((started) => (host = started));
const cleanups = useCleanups();

/**
 * The files tmux's hooks and a coding agent's hooks write to (sessions/changed, bells,
 * agent-events) are made or emptied by the agent when it starts: through a symlink planted at one
 * of them, that emptied the file it points to, wherever it is (outside the data dir too). So were
 * the files they read (tmux.conf, a session's claude-settings.json), written over.
 */
describe('the hook files of the sessions folder', () => {
  /**
   * A file outside the data dir, `plant`ed (symlink or hard link) at sessions/<name>; then the
   * agent's sessions start and make one, listed: the outside file's path.
   */
  async function plantThenMakeASession(name: string, plant: (target: string, at: string) => Promise<void>) {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    await mkdir(join(host.dataDir, 'sessions'), { recursive: true, mode: 0o700 });
    await plant(victim, join(host.dataDir, 'sessions', name));
    const sessions = await host.start();
    const made = SessionCreateParams.parse({ name: 'still', command: ['sleep', '60'], cwd: host.dataDir });
    await sessions.create(made);
    await waitFor(async () => (await sessions.list()).some((s) => s.name === 'still'), 'the session listed');
    return victim;
  }

  it.each(['changed', 'bells', 'agent-events'])(
    'a symlink planted at sessions/%s is not followed: the file it points to is left as it was, sessions still work',
    async (name) => {
      const victim = await plantThenMakeASession(name, symlink);
      expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
    },
  );

  it.each(['changed', 'bells', 'agent-events'])(
    'a hard link at sessions/%s to a file elsewhere is not emptied nor written: the agent makes the file anew',
    async (name) => {
      // O_NOFOLLOW does not see a hard link: it is the victim's own inode.
      const victim = await plantThenMakeASession(name, link);
      expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
      expect((await stat(join(host.dataDir, 'sessions', name))).nlink).toBe(1);
    },
  );

  it("tmux's bell hook writes into the agent's own file, not where a symlink planted at sessions/bells points: bells are still told", async () => {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    await mkdir(join(host.dataDir, 'sessions'), { recursive: true, mode: 0o700 });
    await symlink(victim, join(host.dataDir, 'sessions', 'bells'));

    const sessions = await host.start();
    const rang: string[] = [];
    sessions.onBell((rung) => rang.push(rung));
    const made = SessionCreateParams.parse({
      name: 'asks',
      command: ['sh', '-c', 'sleep 0.3; printf "\\a"; sleep 30'],
      cwd: host.dataDir,
    });
    await sessions.create(made);
    await waitFor(() => rang.includes('asks'), 'the bell of "asks"');
    expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
  });

  it("tmux's change hook touches the agent's own file, not where a symlink planted at sessions/changed points: no file is made there", async () => {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    // `touch` through a symlink to a missing file makes that file.
    const missing = join(outside, 'made-by-touch');
    await mkdir(join(host.dataDir, 'sessions'), { recursive: true, mode: 0o700 });
    await symlink(missing, join(host.dataDir, 'sessions', 'changed'));

    const sessions = await host.start();
    const seen: string[] = [];
    sessions.onChanged((list) => seen.push(list.map((s) => s.name).join(',')));
    const made = SessionCreateParams.parse({ name: 'still', command: ['sleep', '60'], cwd: host.dataDir });
    await sessions.create(made);
    await waitFor(() => seen.includes('still'), 'the change to be told');
    await expect(stat(missing)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("a symlink planted at sessions/tmux.conf is not written through: the agent's tmux config is a file of its own", async () => {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    await mkdir(join(host.dataDir, 'sessions'), { recursive: true, mode: 0o700 });
    await symlink(victim, join(host.dataDir, 'sessions', 'tmux.conf'));

    const sessions = await host.start();
    const made = SessionCreateParams.parse({ name: 'still', command: ['sleep', '60'], cwd: host.dataDir });
    await sessions.create(made);
    await waitFor(async () => (await sessions.list()).some((s) => s.name === 'still'), 'the session listed');
    expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
    // The hooks are in the config tmux read: a session's change is told.
    const seen: string[] = [];
    sessions.onChanged((list) => seen.push(list.map((s) => s.name).join(',')));
    await sessions.create(SessionCreateParams.parse({ name: 'other', command: ['sleep', '60'], cwd: host.dataDir }));
    await waitFor(() => seen.some((names) => names.includes('other')), 'the change to be told');
  });

  it("a symlink planted at a session's claude-settings.json is not written through", async () => {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    await mkdir(join(host.dataDir, 'sessions', 'coder'), { recursive: true, mode: 0o700 });
    await symlink(victim, join(host.dataDir, 'sessions', 'coder', 'claude-settings.json'));

    const sessions = await host.start();
    // A command named claude (a stand-in that only waits) gets hook settings of its session's own.
    const bin = join(outside, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'claude'), '#!/bin/sh\nsleep 60\n', { mode: 0o755 });
    await sessions.create(
      SessionCreateParams.parse({
        name: 'coder',
        command: [join(bin, 'claude')],
        cwd: host.dataDir,
      }),
    );
    expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
    expect(await readFile(join(host.dataDir, 'sessions', 'coder', 'claude-settings.json'), 'utf8')).toContain('hooks');
  });

  it("a symlink planted at sessions/<name> or at its output.log is not written through: a session's output and exit status stay in the data dir", async () => {
    const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    const elsewhere = join(outside, 'elsewhere');
    await mkdir(elsewhere);
    await mkdir(join(host.dataDir, 'sessions', 'logged'), { recursive: true, mode: 0o700 });
    await symlink(victim, join(host.dataDir, 'sessions', 'logged', 'output.log'));
    await symlink(elsewhere, join(host.dataDir, 'sessions', 'moved'));

    const sessions = await host.start();
    for (const name of ['logged', 'moved'])
      await sessions.create(
        SessionCreateParams.parse({ name, command: ['sh', '-c', 'echo said-$((6*7)); exit 3'], cwd: host.dataDir }),
      );
    await waitFor(
      async () => (await sessions.exitStatus('logged')) === 3 && (await sessions.exitStatus('moved')) === 3,
      'both sessions to end',
    );
    // tmux's pipe-pane may write the output after the exit status: what it logged is waited for.
    const logged = (name: string) =>
      readFile(join(host.dataDir, 'sessions', name, 'output.log'), 'utf8').catch(() => '');
    await waitFor(
      async () => (await logged('logged')).includes('said-42') && (await logged('moved')).includes('said-42'),
      "the sessions' output logged in their own folders",
    );
    expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
    expect(await readdir(elsewhere)).toEqual([]);
    for (const name of ['logged', 'moved'])
      expect((await lstat(join(host.dataDir, 'sessions', name))).isDirectory()).toBe(true);
  });

  it("a FIFO planted at a session's exit file is not read: the agent does not wait on it for a writer", async () => {
    const sessions = await host.start();
    await sessions.create(SessionCreateParams.parse({ name: 'runs', command: ['sleep', '60'], cwd: host.dataDir }));
    const exitFile = join(host.dataDir, 'sessions', 'runs', 'exit');
    execFileSync('mkfifo', [exitFile]);
    // A read that waits for a writer would hold one of libuv's few threads until one comes: this
    // one (none is waiting: ENXIO).
    cleanups.push(() => {
      try {
        closeSync(openSync(exitFile, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
      }
    });
    let waited: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      sessions.exitStatus('runs'),
      new Promise((resolve) => (waited = setTimeout(() => resolve('still waiting'), 5_000))),
    ]);
    clearTimeout(waited);
    expect(answer).toBeNull();
  });
});
