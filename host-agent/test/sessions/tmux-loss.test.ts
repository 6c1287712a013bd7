import { describe, expect, it, vi } from 'vitest';
import { SessionCreateParams, TMUX_SERVER_OK, type SessionCreateParams as CreateInput } from '@hangar/shared';
import { bash, useTestHost, waitFor, type TestHost } from './fixture.js';

let host: TestHost;
useTestHost((started) => (host = started));

const params = (input: CreateInput) => SessionCreateParams.parse(input);

/** The pid of the agent's tmux server, asked of tmux itself. */
const serverPid = async () => Number((await host.tmux('display-message', '-p', '#{pid}')).trim());

describe('a tmux server that goes away with sessions on it', () => {
  it.each([
    ['killed with kill -9', async () => process.kill(await serverPid(), 'SIGKILL')],
    ['stopped with tmux kill-server', async () => void (await host.tmux('kill-server'))],
  ])('is reported when %s, with the sessions it took, not as an empty list', async (_how, killServer) => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'work', command: bash, cwd: host.dataDir }));
    await sessions.create(params({ name: 'build', command: ['sleep', '300'], cwd: host.dataDir }));
    expect((await sessions.list()).map((s) => s.name).sort()).toEqual(['build', 'work']);
    expect(sessions.tmuxState()).toEqual(TMUX_SERVER_OK);
    const pid = await serverPid();

    await killServer();
    await waitFor(async () => (await sessions.list()).length === 0, 'the listing without the server');
    const state = sessions.tmuxState();
    expect(state).toMatchObject({ ok: false, lost_at: expect.any(Number) });
    expect([...state.lost_sessions].sort()).toEqual(['build', 'work']);
    expect(state.message).toMatch(
      new RegExp(
        `^the tmux server \\(pid ${pid}\\) exited while sessions "(work|build)", "(work|build)" ran in it ` +
          `\\(it was killed or crashed\\); they were lost\\. A new session starts a fresh tmux server$`,
      ),
    );
    // Asked again, it still says so: the loss is kept until the user starts something new.
    expect(await sessions.list()).toEqual([]);
    expect(sessions.tmuxState().ok).toBe(false);

    // What happens next: a new session starts a fresh server, and the report is cleared.
    await sessions.create(params({ name: 'again', command: bash, cwd: host.dataDir }));
    expect((await sessions.list()).map((s) => s.name)).toEqual(['again']);
    expect(await serverPid()).not.toBe(pid);
    expect(sessions.tmuxState()).toEqual(TMUX_SERVER_OK);
  });

  it('is pushed to clients of an attached session as soon as its terminal ends', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'watched', command: bash, cwd: host.dataDir }));
    const attachment = await sessions.attach('watched', { cols: 80, rows: 24 });
    const changes: { names: string[]; ok: boolean }[] = [];
    sessions.onChanged((list) => changes.push({ names: list.map((s) => s.name), ok: sessions.tmuxState().ok }));
    process.kill(await serverPid(), 'SIGKILL');
    await attachment.closed;
    await waitFor(() => changes.some((c) => c.names.length === 0 && !c.ok), 'a change that tells the loss');
  });

  it('is pushed when no terminal is attached any more, after one was (the look every second resumes)', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'left', command: bash, cwd: host.dataDir }));
    for (let i = 0; i < 2; i++) {
      const attachment = await sessions.attach('left', { cols: 80, rows: 24 });
      attachment.detach();
      await attachment.closed;
    }
    // The looks the detaches' ends and tmux's hooks cause run out first (they would tell too).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const changes: { names: string[]; ok: boolean }[] = [];
    sessions.onChanged((list) => changes.push({ names: list.map((s) => s.name), ok: sessions.tmuxState().ok }));
    process.kill(await serverPid(), 'SIGKILL');
    // Nobody lists: only the agent's own look can tell.
    await waitFor(() => changes.some((c) => c.names.length === 0 && !c.ok), 'a change that tells the loss');
  });

  it('is not signalled while a terminal is attached (its client ends with the server), and is again once it left', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'typing', command: bash, cwd: host.dataDir }));
    const pid = await serverPid();
    const looks = vi.spyOn(process, 'kill');
    try {
      const lookedAt = () => looks.mock.calls.filter(([target, signal]) => target === pid && signal === 0).length;
      await waitFor(() => lookedAt() > 0, 'a look at the server with nothing attached');
      const attachment = await sessions.attach('typing', { cols: 80, rows: 24 });
      const before = lookedAt();
      // Three looks' worth of time attached: none.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(lookedAt()).toBe(before);
      attachment.detach();
      await attachment.closed;
      await waitFor(() => lookedAt() > before, 'a look once the terminal left');
    } finally {
      looks.mockRestore();
    }
  });

  it('is no loss when it exits with its last session, ended on its own or through the agent', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'brief', command: ['sh', '-c', 'read line; exit 4'], cwd: host.dataDir }));
    expect((await sessions.list()).map((s) => s.name)).toEqual(['brief']);
    await host.tmux('send-keys', '-t', '=hangar-brief:', 'Enter');
    await waitFor(async () => (await sessions.list()).length === 0, 'the session to end on its own');
    expect(sessions.tmuxState()).toEqual(TMUX_SERVER_OK);

    await sessions.create(params({ name: 'killed', command: bash, cwd: host.dataDir }));
    expect((await sessions.list()).map((s) => s.name)).toEqual(['killed']);
    await sessions.kill('killed');
    expect(await sessions.list()).toEqual([]);
    expect(sessions.tmuxState()).toEqual(TMUX_SERVER_OK);
  });

  it('is no refusal of a session made while it exits with the last one', async () => {
    const sessions = await host.start();
    // The server exits with its last session; a client that reaches it then is closed unanswered
    // ("server exited unexpectedly"): with raw tmux, about 1 in 5 new sessions made right then.
    for (let round = 0; round < 20; round++) {
      await sessions.create(params({ name: 'brief', command: ['true'], cwd: host.dataDir }));
      await sessions.create(params({ name: 'next', command: ['sleep', '60'], cwd: host.dataDir }));
      // brief's own end may come after next was made (then the server stays, as it should).
      await waitFor(async () => (await sessions.list()).every((s) => s.name !== 'brief'), 'brief to end');
      expect((await sessions.list()).map((s) => s.name)).toEqual(['next']);
      await sessions.kill('next');
    }
    expect(sessions.tmuxState()).toEqual(TMUX_SERVER_OK);
  });
});
