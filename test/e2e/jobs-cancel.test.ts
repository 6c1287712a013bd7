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

  /**
   * A job that puts sleeps out of its process group: `setsid`, and a daemon's double fork (setsid,
   * fork, exit: reparented to init, in a session of its own). Its own shell then runs `foreground`.
   * The sleeps' commands reach it by environment, so only the sleeps themselves show them to ps.
   */
  const escapingJob = (escaped: string, daemon: string, foreground: string): string[] => [
    '--env',
    `ESCAPED=${escaped}`,
    '--env',
    `DAEMON=${daemon}`,
    '--env',
    `FOREGROUND=${foreground}`,
    '-c',
    [
      'setsid $ESCAPED &',
      `sh -c 'setsid sh -c "\\$DAEMON & echo \\$! > daemon.pid" &'`,
      'while [ ! -s daemon.pid ]; do sleep 0.05; done',
      'echo started',
      '$FOREGROUND',
    ].join('\n'),
  ];

  /** Kills what a failed case left, so that it fails alone. */
  const leftovers = (markers: string[]): number[] => {
    const found = markers.flatMap((marker) => processesMatching(marker));
    for (const pid of found) process.kill(pid, 'SIGKILL');
    return found;
  };

  it('hangar cancel also ends what left the job’s process group: a setsid sleep and a double-forked daemon', async () => {
    const markers = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
    const [escaped, daemon, foreground] = markers as [string, string, string];
    try {
      const detached = await hangar(box.home, [
        'run',
        '--executor',
        'shell',
        '--dir',
        box.workspace,
        '--detach',
        ...escapingJob(escaped, daemon, foreground),
      ]);
      const id = detached.stdout.trim();
      await until(
        () => (markers.every((marker) => processesMatching(marker).length > 0) ? true : undefined),
        'the three sleeps',
      );
      const cancelled = await hangar(box.home, ['cancel', id]);
      expect(cancelled).toMatchObject({ code: 0, stdout: `job ${id} on local is cancelled\n` });
      expect({
        escaped: processesMatching(escaped),
        daemon: processesMatching(daemon),
        foreground: processesMatching(foreground),
      }).toEqual({ escaped: [], daemon: [], foreground: [] });
    } finally {
      leftovers(markers);
    }
  }, 40_000);

  it('a job that times out leaves no process behind, even one it moved out of its process group', async () => {
    const markers = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
    const [escaped, daemon, foreground] = markers as [string, string, string];
    try {
      const result = await hangar(box.home, [
        'run',
        '--executor',
        'shell',
        '--dir',
        box.workspace,
        '--timeout',
        '3s',
        ...escapingJob(escaped, daemon, foreground),
      ]);
      expect(result.stdout).toBe('started\n\n[hangar] timed out after 3 s\n');
      expect(result.code).toBe(124);
      expect(leftovers(markers)).toEqual([]);
    } finally {
      leftovers(markers);
    }
  }, 40_000);

  it('a job whose shell exits leaves no process behind, even one it moved out of its process group', async () => {
    const markers = [uniqueSleep(), uniqueSleep()];
    const [escaped, daemon] = markers as [string, string];
    try {
      const result = await hangar(box.home, [
        'run',
        '--executor',
        'shell',
        '--dir',
        box.workspace,
        ...escapingJob(escaped, daemon, 'true'),
      ]);
      expect(result).toMatchObject({ code: 0, stdout: 'started\n' });
      expect(leftovers(markers)).toEqual([]);
    } finally {
      leftovers(markers);
    }
  }, 40_000);

  it('a job id no paired host knows is reported as not found', async () => {
    const result = await hangar(box.home, ['cancel', 'j-00000000']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no paired host has job j-00000000');
  });
});
