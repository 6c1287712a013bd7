import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { HANGAR_BIN, hangar, type CliResult } from '../support/processes.js';
import { killQuietly, processesMatching, uniqueSleep, until } from '../support/until.js';

describe('cancelling a job', () => {
  // One host for these: each job runs in a directory of its own, with sleeps no other job runs
  // (uniqueSleep), and each case checks that its own are gone.
  const box = usePairedHost({ shared: true, name: 'local', workspace: { README: 'cancel me\n' } });

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

  /** The sleeps of a job that puts some out of its process group (runEscapingJob). */
  interface EscapingSleeps {
    escaped: string;
    daemon: string;
    /** What the job's own shell then runs; none: it exits at once. */
    foreground?: string;
  }

  /**
   * `hangar run` (with `options`) of a job that puts sleeps out of its process group: `setsid`, and
   * a daemon's double fork (setsid, fork, exit: reparented to init, in a session of its own). Its
   * own shell then runs `foreground`. The sleeps' commands reach it by environment, so only the
   * sleeps themselves show them to ps.
   */
  const runEscapingJob = ({ escaped, daemon, foreground = 'true' }: EscapingSleeps, options: string[]) => {
    const script = [
      'setsid $ESCAPED &',
      `sh -c 'setsid sh -c "\\$DAEMON & echo \\$! > daemon.pid" &'`,
      'while [ ! -s daemon.pid ]; do sleep 0.05; done',
      'echo started',
      '$FOREGROUND',
    ].join('\n');
    const env = [`ESCAPED=${escaped}`, `DAEMON=${daemon}`, `FOREGROUND=${foreground}`].flatMap((setting) => [
      '--env',
      setting,
    ]);
    return hangar(box.home, ['run', '--executor', 'shell', '--dir', box.workspace, ...options, ...env, '-c', script]);
  };

  /** Each way a job ends, and what the user sees of it; no sleep of the job may outlive any. */
  const endings: {
    name: string;
    /** `hangar run` options besides the job's. */
    options: string[];
    /** Whether the job's own shell runs a sleep too (else it exits once the others are started). */
    foreground: boolean;
    /** Ends the job `hangar run` started, or checks how it ended. */
    end: (run: CliResult, sleeps: string[]) => Promise<void>;
  }[] = [
    {
      name: 'hangar cancel also ends what left the job’s process group: a setsid sleep and a double-forked daemon',
      options: ['--detach'],
      foreground: true,
      end: async (run, sleeps) => {
        const id = run.stdout.trim();
        await until(
          () => (sleeps.every((sleep) => processesMatching(sleep).length > 0) ? true : undefined),
          'the three sleeps',
        );
        const cancelled = await hangar(box.home, ['cancel', id]);
        expect(cancelled).toMatchObject({ code: 0, stdout: `job ${id} on local is cancelled\n` });
      },
    },
    {
      name: 'a job that times out leaves no process behind, even one it moved out of its process group',
      options: ['--timeout', '3s'],
      foreground: true,
      end: async (run) => {
        expect(run).toMatchObject({ code: 124, stdout: 'started\n\n[hangar] timed out after 3 s\n' });
      },
    },
    {
      name: 'a job whose shell exits leaves no process behind, even one it moved out of its process group',
      options: [],
      foreground: false,
      end: async (run) => {
        expect(run).toMatchObject({ code: 0, stdout: 'started\n' });
      },
    },
  ];

  for (const { name, options, foreground, end } of endings) {
    it(`${name}`, async () => {
      const sleeps: EscapingSleeps = {
        escaped: uniqueSleep(),
        daemon: uniqueSleep(),
        ...(foreground ? { foreground: uniqueSleep() } : {}),
      };
      const alive = () =>
        Object.fromEntries(Object.entries(sleeps).map(([role, sleep]) => [role, processesMatching(sleep)]));
      try {
        const run = await runEscapingJob(sleeps, options);
        await end(run, Object.values(sleeps));
        expect(alive()).toEqual(Object.fromEntries(Object.keys(sleeps).map((role) => [role, []])));
      } finally {
        // What a failed case left, so that it fails alone.
        Object.values(alive()).flat().forEach(killQuietly);
      }
    }, 40_000);
  }

  it('a job id no paired host knows is reported as not found', async () => {
    const result = await hangar(box.home, ['cancel', 'j-00000000']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no paired host has job j-00000000');
  });
});
