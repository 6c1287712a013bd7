import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
    expect(run.stdout).toContain('124 timed out, 130 cancelled, 125 lost, 126 could not run');
  });
});
