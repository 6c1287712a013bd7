import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { HangarError, SessionCreateParams } from '@hangar/shared';
import { SessionManager } from '../../src/sessions/index.js';
import { bash, screenText, useTestHost, typeInto, waitFor, type TestHost } from './fixture.js';

let host: TestHost;
useTestHost((started) => (host = started));

const params = (input: SessionCreateParams) => SessionCreateParams.parse(input);

async function rejection(promise: Promise<unknown>): Promise<HangarError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HangarError);
  return error as HangarError;
}

describe('sessions', () => {
  it('lists a created session with its command, directory and liveness', async () => {
    const sessions = await host.start();
    const info = await sessions.create(params({ name: 'build', command: ['sleep', '60'], cwd: host.dataDir }));
    expect(info).toMatchObject({ name: 'build', command: ['sleep', '60'], alive: true, attached_clients: 0 });
    const listed = await sessions.list();
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ name: 'build', command: ['sleep', '60'], alive: true });
    expect(listed[0]!.cwd).toMatch(/hangar-sessions-/);
    expect(listed[0]!.created_at).toBeGreaterThan(1_600_000_000_000);
    expect(sessions.tmuxVersion()).toMatch(/^\d+\.\d+/);
  });

  it('refuses a sixth session and says how to raise the limit', async () => {
    const sessions = await host.start();
    for (let i = 0; i < 5; i++)
      await sessions.create(params({ name: `s${i}`, command: ['sleep', `${60 + i}`], cwd: host.dataDir }));
    // Metadata is per session, not a global option that the last create overwrote.
    expect((await sessions.list()).map((s) => s.command[1])).toEqual(['60', '61', '62', '63', '64']);
    const error = await rejection(sessions.create(params({ name: 's5', command: ['sleep', '60'], cwd: host.dataDir })));
    expect(error.code).toBe('E_SESSION_LIMIT');
    expect(error.message).toContain('limit is 5');
    expect(error.message).toContain('hangar-agent serve --max-sessions');
    expect(await sessions.list()).toHaveLength(5);
  });

  it('refuses a duplicate name, and kill makes the name free again', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'dup', command: ['sleep', '60'], cwd: host.dataDir }));
    expect((await rejection(sessions.create(params({ name: 'dup', command: ['sleep', '60'] })))).code).toBe(
      'E_SESSION_EXISTS',
    );
    await sessions.kill('dup');
    expect(await sessions.list()).toEqual([]);
    expect((await rejection(sessions.kill('dup'))).code).toBe('E_SESSION_NOT_FOUND');
    expect((await rejection(sessions.attach('dup', { cols: 80, rows: 24 }))).code).toBe('E_SESSION_NOT_FOUND');
  });

  it('a missing working directory is a clear error and creates nothing', async () => {
    const sessions = await host.start();
    const missing = join(host.dataDir, 'nope');
    const error = await rejection(sessions.create(params({ name: 'x', command: ['sleep', '60'], cwd: missing })));
    expect(error.code).toBe('E_BAD_REQUEST');
    expect(error.message).toContain(missing);
    expect(error.message).toContain('does not exist');
    expect(await sessions.list()).toEqual([]);
  });

  it('does not confuse a session with another whose name it prefixes', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'ab', command: ['sleep', '60'], cwd: host.dataDir }));
    expect((await rejection(sessions.kill('a'))).code).toBe('E_SESSION_NOT_FOUND');
    expect(await sessions.list()).toHaveLength(1);
  });

  it('passes awkward arguments, environment and directories through untouched', async () => {
    const sessions = await host.start();
    const cwd = join(host.dataDir, "dir #{x} 'q'");
    await mkdir(cwd);
    const out = join(host.dataDir, 'args.txt');
    const script = 'printf "%s|" "$PWD" "$FOO" "$@" > "$OUT"; sleep 60';
    await sessions.create(
      params({
        name: 'args',
        command: ['sh', '-c', script, 'sh', 'a;', '#{session_name}', '$HOME'],
        cwd,
        env: { FOO: '#{host} x', OUT: out },
      }),
    );
    await waitFor(async () => (await readFile(out, 'utf8').catch(() => '')).length > 0, 'the command to run');
    expect(await readFile(out, 'utf8')).toBe(`${cwd}|#{host} x|a;|#{session_name}|$HOME|`);
  });

  it('writes the instructions as CLAUDE.md and AGENTS.md, and keeps a different existing file', async () => {
    const sessions = await host.start();
    const cwd = await mkdtemp(join(tmpdir(), 'hangar-work-'));
    try {
      await sessions.create(params({ name: 'agent', command: ['sleep', '60'], cwd, instructions: '# Be careful\n' }));
      expect(await readFile(join(cwd, 'CLAUDE.md'), 'utf8')).toBe('# Be careful\n');
      expect(await readFile(join(cwd, 'AGENTS.md'), 'utf8')).toBe('# Be careful\n');
      await writeFile(join(cwd, 'AGENTS.md'), 'mine\n');
      const error = await rejection(
        sessions.create(params({ name: 'agent2', command: ['sleep', '60'], cwd, instructions: 'other' })),
      );
      expect(error.code).toBe('E_EXISTS');
      expect(error.message).toContain('CLAUDE.md');
      expect(await readFile(join(cwd, 'AGENTS.md'), 'utf8')).toBe('mine\n');
      expect((await sessions.list()).map((s) => s.name)).toEqual(['agent']);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('says which package to install when tmux is missing', async () => {
    const error = await rejection(
      SessionManager.start({ dataDir: host.dataDir, tmuxPath: join(host.dataDir, 'no-tmux') }),
    );
    expect(error.code).toBe('E_TMUX_MISSING');
    expect(error.message).toMatch(/(apt-get|brew) install tmux/);
  });

  it('reports the exit code of the command when it ends', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'fails', command: ['sh', '-c', 'sleep 1; exit 3'], cwd: host.dataDir }));
    const attachment = await sessions.attach('fails', { cols: 80, rows: 24 });
    const end = await new Promise((resolve) => attachment.onEnd(resolve));
    expect(end).toEqual({ exitCode: 3, reason: 'exited' });
    expect(await sessions.list()).toEqual([]);
  });

  it('reports the exit code even when tmux cannot answer has-session as the server goes away', async () => {
    // A tmux that fails has-session (as one exiting with its last session can) once told to.
    const failing = join(host.dataDir, 'has-session-fails');
    const tmuxPath = join(host.dataDir, 'tmux');
    await writeFile(
      tmuxPath,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = has-session ] && [ -e '${failing}' ] && { echo 'protocol error' >&2; exit 1; }; done\nexec tmux "$@"\n`,
      { mode: 0o755 },
    );
    const sessions = await host.start({ tmuxPath });
    await sessions.create(params({ name: 'racy', command: bash, cwd: host.dataDir, env: { PS1: 'ready$ ' } }));
    const attachment = await sessions.attach('racy', { cols: 80, rows: 24 });
    const screen = screenText(attachment);
    await waitFor(() => screen.text().includes('ready$'), 'the prompt');
    await writeFile(failing, '');
    const end = new Promise((resolve) => attachment.onEnd(resolve));
    typeInto(attachment, 'exit 7\r');
    expect(await end).toEqual({ exitCode: 7, reason: 'exited' });
  });

  it('an attachment to a killed session ends as killed', async () => {
    const sessions = await host.start();
    await sessions.create(params({ name: 'victim', command: bash, cwd: host.dataDir }));
    const attachment = await sessions.attach('victim', { cols: 80, rows: 24 });
    const ended = new Promise((resolve) => attachment.onEnd(resolve));
    await sessions.kill('victim');
    expect(await ended).toEqual({ exitCode: null, reason: 'killed' });
    expect(sessions.getAttachment(attachment.id)).toBeUndefined();
  });

  it('sessions survive an agent restart with their scrollback', async () => {
    const first = await host.start();
    await first.create(params({ name: 'keep', command: bash, cwd: host.dataDir }));
    const attachment = await first.attach('keep', { cols: 80, rows: 24 });
    const screen = screenText(attachment);
    typeInto(attachment, 'echo before-$((40+2))\r');
    await waitFor(() => screen.text().includes('before-42'), 'the echo');
    await first.dispose(); // what kill -9 leaves behind too: the tmux server and its sessions

    const second = await host.start();
    expect(await second.list()).toMatchObject([{ name: 'keep', command: bash, alive: true }]);
    const again = await second.attach('keep', { cols: 80, rows: 24 });
    const screen2 = screenText(again);
    typeInto(again, 'echo after-$((40+3))\r');
    await waitFor(() => screen2.text().includes('after-43'), 'the echo after restart');
    expect(await host.tmux('capture-pane', '-p', '-S', '-', '-t', '=hangar-keep:')).toContain('before-42');
    expect(await readFile(join(host.dataDir, 'sessions', 'keep', 'output.log'), 'utf8')).toContain('before-42');
  });
});

describe('session output log', () => {
  it('is rotated past its size, so a chatty session keeps at most about twice the limit', async () => {
    const limit = 256 * 1024;
    const sessions = await host.start({ outputLogMaxBytes: limit, outputLogCheckMs: 50 });
    const dir = join(host.dataDir, 'sessions', 'chatty');
    const size = (file: string) =>
      stat(join(dir, file)).then(
        (s) => s.size,
        () => 0,
      );
    const text = (file: string) => readFile(join(dir, file), 'utf8').catch(() => '');
    // ~2 MB in bursts of 64 KB, each followed by a numbered marker, then quiet.
    const script =
      'for i in $(seq 1 32); do head -c 65536 /dev/zero | tr "\\0" x; echo " burst-$i"; sleep 0.05; done; sleep 60';
    await sessions.create(params({ name: 'chatty', command: ['sh', '-c', script], cwd: host.dataDir }));
    let largest = 0;
    let rotated = false;
    await waitFor(
      async () => {
        const [current, previous] = [await size('output.log'), await size('output.log.1')];
        largest = Math.max(largest, current + previous);
        rotated ||= previous > limit;
        // Done once the last burst is kept and no rotation is pending (output.log is under the limit).
        return current <= limit && ((await text('output.log.1')) + (await text('output.log'))).includes('burst-32');
      },
      'the last burst, kept, with no rotation pending',
      20_000,
    );
    expect(rotated).toBe(true);
    expect(largest).toBeLessThan(2 * limit + 512 * 1024);
    // What is kept is the newest output, in order, nothing written twice.
    // Read until two reads 100 ms apart agree: tmux's last bytes can land after the wait and rotate
    // the log once more, and a read across that rotation sees output.log.1 before it and
    // output.log after it (seen in a clean CI run: the last burst read was 28).
    let kept = '';
    for (let previous: string | undefined, i = 0; i < 50 && kept !== previous; i++) {
      previous = kept;
      await new Promise((resolve) => setTimeout(resolve, 100));
      kept = (await text('output.log.1')) + (await text('output.log'));
    }
    const bursts = [...kept.matchAll(/burst-(\d+)/g)].map((m) => Number(m[1]));
    expect(bursts.at(-1)).toBe(32);
    expect(bursts).toEqual([...bursts].sort((x, y) => x - y).filter((n, i, all) => all.indexOf(n) === i));
    expect(bursts.length).toBeLessThan(32);
  });
});

describe('session changes', () => {
  it('are told as they happen: a session made, a client attached, and sessions ending on their own, the last one too', async () => {
    const sessions = await host.start();
    const seen: string[] = [];
    sessions.onChanged((list) => seen.push(list.map((s) => `${s.name}:${s.attached_clients}`).join(',') || 'none'));
    await sessions.create(params({ name: 'long', command: ['sh', '-c', 'read line'], cwd: host.dataDir }));
    await waitFor(() => seen.at(-1) === 'long:0', 'the new session');
    await sessions.create(params({ name: 'brief', command: ['sh', '-c', 'sleep 0.5'], cwd: host.dataDir }));
    await waitFor(() => seen.at(-1) === 'brief:0,long:0' || seen.at(-1) === 'long:0,brief:0', 'the second session');
    await waitFor(() => seen.at(-1) === 'long:0', 'brief ended by itself');
    const attachment = await sessions.attach('long', { cols: 80, rows: 24 });
    await waitFor(() => seen.at(-1) === 'long:1', 'the attached client');
    attachment.detach();
    await attachment.closed;
    await waitFor(() => seen.at(-1) === 'long:0', 'the client gone');
    // The last session: its tmux server exits with it, and no hook runs.
    await host.tmux('send-keys', '-t', '=hangar-long:', 'Enter');
    await waitFor(() => seen.at(-1) === 'none', 'the last session ended');
  });
});

describe('a killed tmux server', () => {
  it('is told as a change without anyone listing: the list goes empty and the lost session is named', async () => {
    const sessions = await host.start();
    const seen: string[] = [];
    sessions.onChanged((list) => seen.push(list.map((s) => s.name).join(',') || 'none'));
    await sessions.create(params({ name: 'kept', command: ['sh', '-c', 'read line'], cwd: host.dataDir }));
    await waitFor(() => seen.at(-1) === 'kept', 'the new session');
    const pid = Number((await host.tmux('display-message', '-p', '#{pid}')).trim());
    process.kill(pid, 'SIGKILL');
    // No hook runs for this, and nobody lists: only the agent's own look at its server tells.
    await waitFor(() => seen.at(-1) === 'none', 'the loss told');
    expect(sessions.tmuxState()).toMatchObject({ ok: false, lost_sessions: ['kept'] });
  });
});

describe('an idle agent', () => {
  it('arms no periodic work for sessions while it has none (the look at its tmux server, the output-log check)', async () => {
    // Only intervals are faked (tmux runs, and waitFor polls, on real timers): each one armed is counted.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const sessions = await host.start();
      expect(await sessions.list()).toEqual([]);
      expect(vi.getTimerCount()).toBe(0);
      await sessions.create(params({ name: 'kept', command: ['sh', '-c', 'read line'], cwd: host.dataDir }));
      // While a session runs unattached: the look whether its server lives, and its output log's check.
      expect(vi.getTimerCount()).toBe(2);
      await sessions.kill('kept');
      expect(await sessions.list()).toEqual([]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('session bells', () => {
  it('a session that rings the bell is named, attached or not; a session made by hand on our socket is not', async () => {
    const sessions = await host.start();
    const rang: string[] = [];
    sessions.onBell((name) => rang.push(name));
    await sessions.create(
      params({ name: 'asks', command: ['sh', '-c', 'sleep 0.3; printf "\\a"; sleep 30'], cwd: host.dataDir }),
    );
    await waitFor(() => rang.includes('asks'), 'the bell of "asks"');
    // A name that would be a command if the hook did not quote it. It rings, then marks that it did.
    const handRang = join(host.dataDir, 'hand-rang');
    await host.tmux(
      'new-session',
      '-d',
      '-s',
      `x$(touch ${host.dataDir}/pwned)`,
      `sh -c "sleep 0.3; printf '\\a'; : > ${handRang}; sleep 30"`,
    );
    await waitFor(() => existsSync(handRang), 'the hand-made session to ring');
    // A bell of ours rung after it: once that one is told, the hand-made one would have been too.
    await sessions.create(
      params({ name: 'later', command: ['sh', '-c', 'sleep 0.3; printf "\\a"; sleep 30'], cwd: host.dataDir }),
    );
    await waitFor(() => rang.includes('later'), 'the bell of "later"');
    expect(rang).toEqual(['asks', 'later']);
    await expect(stat(join(host.dataDir, 'pwned'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
