import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangarFrom, type CliResult } from '../support/processes.js';

/**
 * `hangar run --secret`: the value reaches the job's environment and nothing else — not the
 * listings, not the agent's debug log, not agent.db or any file of the agent in plain text, not a
 * command line other users of the host could read in /proc.
 */
describe('job secrets through the CLI', () => {
  const secret = `s3cret-${randomBytes(12).toString('hex')}`;
  const fromEnv = `env-s3cret-${randomBytes(12).toString('hex')}`;
  const box = usePairedHost({
    agent: { logLevel: 'debug' },
    // A data dir others may read, as an older version or a careless mkdir would leave it.
    beforeStart: (dataDir) => chmodSync(dataDir, 0o755),
  });

  const hangar = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.home, env });
  /** `hangar run` on box with no workspace and API_TOKEN as a secret. */
  const runWithSecret = (executor: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    hangar(
      ['run', '--host', 'box', '--executor', executor, '--no-workspace', '--secret', `API_TOKEN=${secret}`, ...args],
      env,
    );
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

  /** Every file under the agent's data dir that holds `needle` as bytes. */
  const filesHolding = (needle: string): string[] => {
    const bytes = Buffer.from(needle);
    const found: string[] = [];
    const visit = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) visit(path);
        else if (entry.isFile() && readFileSync(path).includes(bytes)) found.push(path);
      }
    };
    visit(box.dataDir);
    return found;
  };

  it('the data dir left open to others is tightened to 0700 at start, and the log says so', () => {
    expect(statSync(box.dataDir).mode & 0o777).toBe(0o700);
    const line = box.agent
      .stderr()
      .split('\n')
      .find((l) => l.includes('tightened it to 0700'));
    expect(JSON.parse(line!)).toMatchObject({ dataDir: box.dataDir, was: '0755' });
  });

  for (const executor of ['shell', 'sandbox']) {
    it(`a secret reaches the ${executor} job and is shown nowhere but there`, async () => {
      const ran = await runWithSecret(
        executor,
        [
          '--secret',
          'FROM_ENV',
          '--env',
          'PLAIN=visible',
          '-c',
          'printf %s "$API_TOKEN" | sha256sum; printf %s "$FROM_ENV" | sha256sum; printenv PLAIN',
        ],
        { FROM_ENV: fromEnv },
      );
      expect(ran.stderr).toMatch(/succeeded/);
      expect(ran.code).toBe(0);
      expect(ran.stdout).toBe(`${sha256(secret)}  -\n${sha256(fromEnv)}  -\nvisible\n`);
      const id = /job (j-[a-z0-9]+)/.exec(ran.stderr)![1]!;

      const shown = await hangar(['jobs', 'show', id]);
      expect(shown.stdout).toMatch(/^env {7}PLAIN=visible {2}API_TOKEN \(secret\) {2}FROM_ENV \(secret\)$/m);
      const detail = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
        spec: Record<string, unknown>;
      };
      expect(detail.spec['secret_env_names']).toEqual(['API_TOKEN', 'FROM_ENV']);
      expect(detail.spec).not.toHaveProperty('secret_env');
      const listed = await hangar(['jobs', '--json']);
      for (const output of [shown.stdout, JSON.stringify(detail), listed.stdout, ran.stderr]) {
        expect(output).not.toContain(secret);
        expect(output).not.toContain(fromEnv);
      }

      // The agent logged the request (debug) with the secrets' names only.
      expect(box.agent.stderr()).toContain('"method":"job.submit"');
      expect(box.agent.stderr()).toContain('"API_TOKEN":"[Redacted]"');
      expect(box.agent.stderr()).not.toContain(secret);
      expect(box.agent.stderr()).not.toContain(fromEnv);
      // agent.db (and its WAL), the job's log, the workdir: no file holds them in plain text.
      expect(filesHolding(secret)).toEqual([]);
      expect(filesHolding(fromEnv)).toEqual([]);
      expect(statSync(join(box.dataDir, 'secret-env.key')).mode & 0o777).toBe(0o600);
    });

    it(`while a ${executor} job runs, its secret is on no command line of the host`, async () => {
      const detached = await runWithSecret(executor, ['-c', 'echo started; sleep 60', '--detach']);
      const id = detached.stdout.trim();
      try {
        const deadline = Date.now() + 20_000;
        while (!(await hangar(['logs', id])).stdout.includes('started')) {
          if (Date.now() > deadline) throw new Error('the job did not start');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const commandLines = readdirSync('/proc')
          .filter((name) => /^\d+$/.test(name))
          .map((pid) => {
            try {
              return readFileSync(`/proc/${pid}/cmdline`);
            } catch {
              return Buffer.alloc(0); // the process ended while we looked
            }
          });
        expect(commandLines.some((line) => line.includes(Buffer.from(secret)))).toBe(false);
      } finally {
        expect((await hangar(['cancel', id])).code).toBe(0);
      }
    });
  }

  it('--secret KEY that this shell has not set is refused before anything is sent', async () => {
    const refused = await hangar(['run', '--host', 'box', '--secret', 'NOT_SET_ANYWHERE', '-c', 'true']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('NOT_SET_ANYWHERE is not set in this environment');
    const both = await hangar(['run', '--host', 'box', '--secret', 'A=1', '--env', 'A=2', '-c', 'true']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('either in env or in secret_env');
    expect((await hangar(['jobs', '--json'])).stdout).not.toContain('"id"');
    const help = await hangar(['run', '--help']);
    expect(help.stdout).toContain('shell history');
  });
});
