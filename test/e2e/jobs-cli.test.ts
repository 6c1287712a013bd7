import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, removeDir, tempDir } from '../support/processes.js';

/** What the job commands say about bad input, before any host is contacted. */
describe('job commands: arguments and help', () => {
  let home: string;
  beforeEach(() => {
    home = tempDir('home');
  });
  afterEach(() => removeDir(home));

  it.each([
    [['run', '-c', 'true', '--timeout', '5x'], '--timeout 5x: expected a duration like 90s, 60m or 1h30m'],
    [['run', '-c', 'true', '--timeout', '0s'], '--timeout 0s: must be longer than zero'],
    // Bounds of the host's spec, in the option's words (was: jobs.submit: spec.timeout_ms: Too small)
    [['run', '-c', 'true', '--timeout', '0'], '--timeout 0: expected from 1s to 7d'],
    [['run', '-c', 'true', '--timeout', '500ms'], '--timeout 500ms: expected from 1s to 7d'],
    [['run', '-c', 'true', '--timeout', '8d'], '--timeout 8d: expected from 1s to 7d'],
    // Was: ENOENT: no such file or directory, realpath '…' (status 1)
    [['run', '-c', 'true', '--dir', '/nonexistent-hangar-dir'], '--dir /nonexistent-hangar-dir: no such folder'],
    [['run', '-c', 'true', '--dir', '/etc/hostname'], '--dir /etc/hostname: not a folder'],
    [['run', '-c', 'true', '--retries', 'two'], '--retries two: expected a whole number'],
    [['run', '-c', 'true', '--env', 'NOVALUE'], '--env NOVALUE: expected KEY=VALUE'],
    [['run', '-c', 'true', '--executor', 'docker'], '--executor'],
    [
      ['run', '-c', 'true', '--network', 'bridge'],
      '--network: unknown network "bridge": expected outbound (the default), none or host',
    ],
    [['run', '-c', 'true', '--artifacts', '../secrets'], 'artifact globs may not contain ".."'],
    [['run', '-c', 'true', '--pids', 'many'], '--pids many: expected a whole number'],
    [['run', '-c', 'true', '--pids', '4'], '--pids 4: at least 16 processes'],
    [['run', '-c', 'true', '--memory', 'lots'], '--memory lots: expected a size like 512M or 4G'],
    [['run', '-c', 'true', '--memory', '8M'], '--memory 8M: at least 16 MiB'],
    [['run', '-c', 'true', '--memory', '2T'], '--memory 2T: at most 1 TiB'],
    [['run', '-c', 'true', '--cpus', 'two'], '--cpus two: expected a number of CPUs like 2 or 0.5'],
    [['run', '-c', 'true', '--cpus', '0'], '--cpus 0: expected more than 0 CPUs'],
    [['logs', 'not-a-job'], 'expected a job id like j-1a2b3c4d'],
    // commander's own usage errors, on a subcommand and on a sub-subcommand
    [['jobs', '--bogus'], "unknown option '--bogus'"],
    [['session', 'ls', '--bogus'], "unknown option '--bogus'"],
  ])('hangar %j is refused as bad input (status 2)', async (args, message) => {
    const result = await hangar(home, args);
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(2);
  });

  it('run without a paired host "local" says how to add one', async () => {
    const result = await hangar(home, ['run', '-c', 'true']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no host named "local"');
  });

  it('every job command has --help', async () => {
    for (const command of [['run'], ['jobs'], ['jobs', 'show'], ['logs'], ['artifacts'], ['cancel'], ['retry']]) {
      const result = await hangar(home, [...command, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: hangar ${command.join(' ')}`);
    }
    const run = await hangar(home, ['run', '--help']);
    expect(run.stdout).toContain(
      '124 timed out, 130 cancelled, 125 lost, 126 could not run (or its artifacts could not be collected)',
    );
  });
});

describe('hangar retry', () => {
  const box = usePairedHost({ name: 'local', workspace: { README: 'retry me\n' } });

  it('names the attempt it queued, the one logs --follow then shows', async () => {
    const first = await hangar(box.home, ['run', '-c', 'echo attempt-$HANGAR_ATTEMPT', '--no-workspace', '--detach']);
    const id = first.stdout.trim();
    expect(await hangar(box.home, ['logs', id, '--follow'])).toMatchObject({ code: 0, stdout: 'attempt-1\n' });
    const retried = await hangar(box.home, ['retry', id]);
    expect(retried.code).toBe(0);
    // Was "(attempt 1)": the agent answers with the job as queued, whose count is still the last attempt's.
    expect(retried.stdout).toMatch(new RegExp(`^job ${id} on local is (queued|running) \\(attempt 2\\)\n$`));
    const followed = await hangar(box.home, ['logs', id, '--follow']);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain('attempt-2\n');
  });
});
