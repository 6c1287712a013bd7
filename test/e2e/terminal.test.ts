import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachedCli } from '../support/pty-client.js';
import {
  hangar,
  killTmuxServer,
  pairWith,
  removeDir,
  startAgentProcess,
  tempDir,
  tmux,
  type AgentProcess,
  BASH,
} from '../support/processes.js';

/** Through the `hangar` CLI, a real agent process and real tmux, as a user would. */
describe('terminal sessions through the CLI', () => {
  let home: string;
  let dataDir: string;
  let agent: AgentProcess;
  const clients: AttachedCli[] = [];

  beforeEach(async () => {
    home = tempDir('home');
    dataDir = tempDir('agent');
    agent = await startAgentProcess(dataDir);
    await pairWith(home, 'box', agent);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await client[Symbol.asyncDispose]();
    await agent?.stop();
    await killTmuxServer(dataDir);
    removeDir(home);
    removeDir(dataDir);
  });

  const attach = (session: string, size = { cols: 100, rows: 30 }) => {
    const client = new AttachedCli(home, ['box', session], size);
    clients.push(client);
    return client;
  };

  it('a second client sees what the first typed, resize follows the typist, kill ends both', async () => {
    const created = await hangar(home, ['session', 'new', 'box', '--name', 'work', ...BASH]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);

    const listed = await hangar(home, ['session', 'ls', 'box', '--json']);
    const [group] = JSON.parse(listed.stdout) as { sessions: { name: string; command: string[]; alive: boolean }[] }[];
    expect(group!.sessions).toEqual([
      expect.objectContaining({ name: 'work', command: ['bash', '--norc', '--noprofile'], alive: true }),
    ]);

    const first = attach('work', { cols: 100, rows: 30 });
    const second = attach('work', { cols: 100, rows: 30 });
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
        (await tmux(dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim() ===
        '90x25',
    );
    second.resize(70, 20);
    await new Promise((r) => setTimeout(r, 300));
    expect(
      (await tmux(dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim(),
    ).toBe('90x25');
    second.type('\r');
    await waitFor(
      async () =>
        (await tmux(dataDir, ['display', '-p', '-t', 'hangar-work', '#{window_width}x#{window_height}'])).trim() ===
        '70x20',
    );

    const killed = await hangar(home, ['session', 'kill', 'box', 'work']);
    expect(killed.code).toBe(0);
    expect(await first.waitForExit()).toBe(0);
    expect(await second.waitForExit()).toBe(0);
    const after = await hangar(home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(after.stdout)[0].sessions).toEqual([]);
  });

  it('attach exits with the status of the command when the session ends', async () => {
    await hangar(home, ['session', 'new', 'box', '--name', 'short', ...BASH]);
    const client = attach('short');
    await client.waitForText('$');
    client.type('exit 7\r');
    expect(await client.waitForExit()).toBe(7);
  });

  it('the detach key leaves the session running, and reattaching shows it as it was', async () => {
    await hangar(home, ['session', 'new', 'box', '--name', 'bg', ...BASH]);
    const client = attach('bg');
    await client.waitForText('$');
    client.type('echo still-here\r');
    await client.waitForText(/^still-here$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    const listed = await hangar(home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'bg', alive: true })]);
    const again = attach('bg');
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
      const help = await hangar(home, [...command, '--help']);
      expect(help.code, command.join(' ')).toBe(0);
      expect(help.stdout).toMatch(/Usage: hangar/);
    }
  });

  it('Ctrl-C under a `yes` flood returns the prompt, 20 of 20 times', async () => {
    await hangar(home, ['session', 'new', 'box', '--name', 'flood', ...BASH]);
    const client = attach('flood');
    await client.waitForText('$');
    for (let run = 0; run < 20; run++) {
      client.type('yes\r');
      await client.waitForText(/^y$/m, 5000);
      await new Promise((r) => setTimeout(r, 100));
      client.type('\x03');
      client.type(`echo done-${run}\r`);
      await client.waitForText(new RegExp(`^done-${run}$`, 'm'), 5000);
    }
  });

  it('the 6th session over the limit of 5 is refused with a clear message', async () => {
    for (let i = 1; i <= 5; i++) {
      expect((await hangar(home, ['session', 'new', 'box', '--name', `s${i}`, '--', 'sleep', '600'])).code).toBe(0);
    }
    const sixth = await hangar(home, ['session', 'new', 'box', '--name', 's6', '--', 'sleep', '600']);
    expect(sixth.code).toBe(6);
    expect(sixth.stderr).toMatch(/the limit is 5/);
    expect(sixth.stderr).toMatch(/--max-sessions/);
  });

  it('bad input is refused with the field and what was expected, and nothing is created', async () => {
    const bad = await hangar(home, ['session', 'new', 'box', '--name', '../evil', '--', 'bash']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/name/);
    const noDir = await hangar(home, [
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
    const listed = await hangar(home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([]);
  });

  it('sessions survive kill -9 of the agent and are attachable with their scrollback after restart', async () => {
    await hangar(home, ['session', 'new', 'box', '--name', 'keep', ...BASH]);
    const client = attach('keep');
    await client.waitForText('$');
    client.type('echo before-crash\r');
    await client.waitForText(/^before-crash$/m);
    await agent.stop('SIGKILL');
    await client[Symbol.asyncDispose]();

    agent = await startAgentProcess(dataDir, { port: agent.port });
    const listed = await hangar(home, ['session', 'ls', 'box', '--json']);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'keep', alive: true })]);
    const again = attach('keep');
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
