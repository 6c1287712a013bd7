import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { HANGAR_BIN, hangar } from '../support/processes.js';
import { processesMatching, uniqueSleep, until } from '../support/until.js';

describe('cancelling a job', () => {
  const box = usePairedHost({ name: 'local', workspace: { README: 'cancel me\n' } });

  it('Ctrl-C in hangar run cancels the job, waits for its end, and leaves no process behind', async () => {
    const marker = uniqueSleep();
    const cli = pty.spawn(
      process.execPath,
      [HANGAR_BIN, 'run', '--executor', 'shell', '--dir', box.workspace, '-c', `echo started; ${marker}; echo never`],
      {
        name: 'xterm-256color',
        cols: 120,
        rows: 30,
        cwd: box.workspace,
        env: { ...process.env, HANGAR_HOME: box.home },
      },
    );
    let screen = '';
    cli.onData((data) => (screen += data));
    const exited = new Promise<number>((resolve) => cli.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      await until(async () => (screen.includes('started') ? true : undefined), 'the job to start');
      expect(processesMatching(marker)).not.toEqual([]);
      cli.write('\x03');
      const code = await Promise.race([
        exited,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`no exit; screen: ${screen}`)), 20_000)),
      ]);
      expect(screen).toContain('cancelling job');
      expect(screen).toMatch(/job j-[a-z0-9]+ was cancelled/);
      // The command line is echoed on stderr; the job's own `never` would be a line of its own.
      expect(screen).not.toMatch(/^never\r?$/m);
      expect(code).toBe(130);
      expect(processesMatching(marker)).toEqual([]);
    } finally {
      cli.kill();
    }
  }, 40_000);

  it('hangar cancel ends a detached job and its processes; the job shows as cancelled', async () => {
    const marker = uniqueSleep();
    const detached = await hangar(box.home, [
      'run',
      '--executor',
      'shell',
      '--dir',
      box.workspace,
      '--detach',
      '-c',
      `(${marker}) & ${marker}`,
    ]);
    const id = detached.stdout.trim();
    await until(() => (processesMatching(marker).length >= 2 ? true : undefined), 'both sleeps');
    const cancelled = await hangar(box.home, ['cancel', id]);
    expect(cancelled).toMatchObject({ code: 0, stdout: `job ${id} on local is cancelled\n` });
    expect(processesMatching(marker)).toEqual([]);
    const shown = await hangar(box.home, ['jobs', 'show', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: 'cancelled', host: 'local' });
    const followed = await hangar(box.home, ['logs', id, '--follow']);
    expect(followed.code).toBe(130);
  }, 40_000);

  it('a job id no paired host knows is reported as not found', async () => {
    const result = await hangar(box.home, ['cancel', 'j-00000000']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no paired host has job j-00000000');
  });
});
