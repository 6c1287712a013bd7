import { afterEach, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { BASH, hangar, tmux } from '../support/processes.js';

/** Through the `hangar` CLI, a real agent process and real tmux, as a user would. */
describe('terminal sessions through the CLI', () => {
  // One host for these: after each test its attach commands are closed and every session it left
  // is killed, so the next begins with none (several count the host's sessions, one its limit).
  const box = usePairedHost({ shared: true });
  afterEach(async () => {
    await box.closeClients();
    await box.killSessions();
  });

  it('a second client sees what the first typed, resize follows the typist, kill ends both', async () => {
    const created = await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);

    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    const [group] = JSON.parse(listed.stdout) as { sessions: { name: string; command: string[]; alive: boolean }[] }[];
    expect(group!.sessions).toEqual([
      expect.objectContaining({ name: 'work', command: ['bash', '--norc', '--noprofile'], alive: true }),
    ]);

    const first = box.attach('work', { cols: 100, rows: 30 });
    const second = box.attach('work', { cols: 100, rows: 30 });
    await first.waitForText('$');
    await second.waitForText('$');
    first.type('echo hello-from-first\r');
    await first.waitForText(/^hello-from-first$/m);
    await second.waitForText(/^hello-from-first$/m);

    // The client that typed last drives the size; the other one does not shrink it.
    first.resize(90, 25);
    first.type('\r');
    await waitFor(
      async () =>
        (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim() ===
        '90x25',
    );
    second.resize(70, 20);
    // The resize has reached tmux once the second client is that size; the window must not follow.
    await waitFor(async () =>
      (await tmux(box.dataDir, ['list-clients', '-t', 'hangar-work', '-F', '#{client_width}x#{client_height}']))
        .split('\n')
        .includes('70x20'),
    );
    expect(
      (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim(),
    ).toBe('90x25');
    second.type('\r');
    await waitFor(
      async () =>
        (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim() ===
        '70x20',
    );

    const killed = await hangar(box.home, ['session', 'kill', 'box', 'work']);
    expect(killed.code).toBe(0);
    expect(await first.waitForExit()).toBe(0);
    expect(await second.waitForExit()).toBe(0);
    const after = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(after.stdout)[0].sessions).toEqual([]);
  });

  it("a second attach whose terminal answers tmux's queries does not take the size from the one typing", async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'answers', ...BASH])).code).toBe(0);
    const size = async () =>
      (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-answers', '#{window_width}x#{window_height}'])).trim();
    const typing = box.attach('answers', { cols: 100, rows: 30 });
    await typing.waitForText('$');
    typing.type('echo typed-here\r');
    await typing.waitForText(/^typed-here$/m);
    expect(await size()).toBe('100x30');

    const viewer = box.attach('answers', { cols: 70, rows: 20 });
    viewer.answerQueries();
    await viewer.waitForText(/^typed-here$/m);
    // tmux has the viewer's answer (a size hand-over for it would have come first)...
    const clients = async () =>
      (
        await tmux(box.dataDir, [
          'list-clients',
          '-t',
          'hangar-answers',
          '-F',
          '#{client_width} #{client_termfeatures}',
        ])
      ).split('\n');
    await waitFor(async () => (await clients()).some((line) => line.startsWith('70 ') && line.includes('RGB')));
    // ...and the window keeps the typing client's size.
    expect(await size()).toBe('100x30');
    viewer.type('\r');
    await waitFor(async () => (await size()) === '70x20');
  });

  it('attach exits with the status of the command when the session ends', async () => {
    const client = await box.bashAttached('short');
    client.type('exit 7\r');
    // On a mismatch, what the client printed last says why (its stderr is on the same pty).
    expect(await client.waitForExit(), client.raw.slice(-400)).toBe(7);
  });

  it('the detach key leaves the session running, and reattaching shows it as it was', async () => {
    const client = await box.bashAttached('bg');
    client.type('echo still-here\r');
    await client.waitForText(/^still-here$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'bg', alive: true })]);
    const again = box.attach('bg');
    await again.waitForText(/^still-here$/m);
  });

  it('every command explains itself with --help', async () => {
    const commands = [
      [],
      ['up'],
      ['hosts'],
      ['hosts', 'add'],
      ['hosts', 'ls'],
      ['hosts', 'rm'],
      ['session'],
      ['session', 'new'],
      ['session', 'ls'],
      ['session', 'kill'],
      ['attach'],
    ];
    for (const command of commands) {
      const help = await hangar(box.home, [...command, '--help']);
      expect(help.code, command.join(' ')).toBe(0);
      expect(help.stdout).toMatch(/Usage: hangar/);
    }
  });

  it('Ctrl-C under a `yes` flood returns the prompt, 20 of 20 times', async () => {
    const client = await box.bashAttached('flood');
    for (let run = 0; run < 20; run++) {
      // Each run floods its own word: a plain `y` would still be on the screen from the run before,
      // and Ctrl-C typed before this run's `yes` started would race bash's own reading of the line.
      client.type(`yes flood-${run}\r`);
      await client.waitForText(new RegExp(`^flood-${run}$`, 'm'), 5000);
      await new Promise((r) => setTimeout(r, 100));
      client.type('\x03');
      client.type(`echo done-${run}\r`);
      await client.waitForText(new RegExp(`^done-${run}$`, 'm'), 5000);
    }
  });

  it('the 6th session over the limit of 5 is refused with a clear message', async () => {
    for (let i = 1; i <= 5; i++) {
      expect((await hangar(box.home, ['session', 'new', 'box', '--name', `s${i}`, '--', 'sleep', '600'])).code).toBe(0);
    }
    const sixth = await hangar(box.home, ['session', 'new', 'box', '--name', 's6', '--', 'sleep', '600']);
    expect(sixth.code).toBe(6);
    expect(sixth.stderr).toMatch(/the limit is 5/);
    expect(sixth.stderr).toMatch(/--max-sessions/);
  });

  it('bad input is refused with the field and what was expected, and nothing is created', async () => {
    const bad = await hangar(box.home, ['session', 'new', 'box', '--name', '../evil', '--', 'bash']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/name/);
    const noDir = await hangar(box.home, [
      'session',
      'new',
      'box',
      '--name',
      'nodir',
      '--cwd',
      '/definitely/not/here',
      '--',
      'bash',
    ]);
    expect(noDir.code).not.toBe(0);
    expect(noDir.stderr).toMatch(/not\/here/);
    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([]);
  });

  it('sessions survive kill -9 of the agent and are attachable with their scrollback after restart', async () => {
    const client = await box.bashAttached('keep');
    client.type('echo before-crash\r');
    await client.waitForText(/^before-crash$/m);
    await client[Symbol.asyncDispose]();
    await box.restartAgent({ signal: 'SIGKILL' });
    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'keep', alive: true })]);
    const again = box.attach('keep');
    await again.waitForText(/^before-crash$/m);
    again.type('echo after-restart\r');
    await again.waitForText(/^after-restart$/m);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
