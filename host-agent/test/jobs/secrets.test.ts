import type { JobDetail, JobInfo } from '@hangar/shared';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startJobHost } from './fixture.js';

const SECRET = 'tok-3e1d2c9b8a7f6e5d';

/** The database's files as they are on disk (the WAL holds recent writes until a checkpoint). */
function dbBytes(dataDir: string): Buffer {
  const read = (name: string) => {
    try {
      return readFileSync(join(dataDir, name));
    } catch {
      return Buffer.alloc(0); // no WAL right after a checkpoint
    }
  };
  return Buffer.concat([read('agent.db'), read('agent.db-wal')]);
}

describe('job secrets at rest', () => {
  it('are sealed in agent.db, opened for the job, and gone with the job when retention removes it', async () => {
    await using host = await startJobHost({ retention: { maxAgeMs: 3600_000, maxBytes: 1e12 } });
    const client = host.connect();
    const hash = createHash('sha256').update(SECRET).digest('hex');
    const job = await client.call<JobInfo>('job.submit', {
      command: `test "$(printf %s "$TOKEN" | sha256sum)" = "${hash}  -"`,
      executor: 'shell',
      secret_env: { TOKEN: SECRET },
    });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });
    host.store.db.pragma('wal_checkpoint(TRUNCATE)');
    expect(dbBytes(host.dataDir).includes(Buffer.from(SECRET))).toBe(false);

    const detail = await client.call<JobDetail>('job.get', { id: job.id });
    expect(detail.spec.secret_env_names).toEqual(['TOKEN']);
    expect(JSON.stringify(detail)).not.toContain(SECRET);
    const sealed = host.store.db.prepare('SELECT sealed FROM job_secrets WHERE job_id = ?').get(job.id) as {
      sealed: Buffer;
    };

    host.store.db.prepare('UPDATE jobs SET finished_at = 0 WHERE id = ?').run(job.id);
    await host.jobs.prune();
    expect(() => host.jobs.get(job.id)).toThrow(/no job/);
    expect(host.store.db.prepare('SELECT count(*) AS n FROM job_secrets').get()).toEqual({ n: 0 });
    // secure_delete: once the WAL is checkpointed, not even the ciphertext is left in the file.
    host.store.db.pragma('wal_checkpoint(TRUNCATE)');
    expect(dbBytes(host.dataDir).includes(sealed.sealed)).toBe(false);
  });

  it('a sealed value moved to another variable, or a lost key, fails the attempt saying why', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const job = await client.call<JobInfo>('job.submit', {
      command: 'true',
      executor: 'shell',
      secret_env: { A: 'one', B: 'two' },
    });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });

    // The job id and the name are the associated data: swapping two sealed values does not go unseen.
    const rename = host.store.db.prepare('UPDATE job_secrets SET name = ? WHERE job_id = ? AND name = ?');
    rename.run('T', job.id, 'A');
    rename.run('A', job.id, 'B');
    rename.run('B', job.id, 'T');
    await client.call('job.retry', { id: job.id });
    const swapped = await host.waitFor(job.id);
    expect(swapped).toMatchObject({ state: 'failed' });
    expect(swapped.error).toMatch(/secret [AB] of job .* does not open/);

    await host.stop();
    rmSync(join(host.dataDir, 'secret-env.key'));
    await using again = await startJobHost({ dataDir: host.dataDir });
    await again.connect().call('job.retry', { id: job.id });
    const keyless = await again.waitFor(job.id);
    expect(keyless).toMatchObject({ state: 'failed' });
    expect(keyless.error).toMatch(/secret-env\.key\) is gone/);
  });

  it('a variable given both as env and as a secret is refused at submit', async () => {
    await using host = await startJobHost();
    await expect(
      host.connect().call('job.submit', { command: 'true', env: { A: '1' }, secret_env: { A: '2' } }),
    ).rejects.toMatchObject({ code: 'E_BAD_REQUEST', message: expect.stringContaining('secret_env') });
  });
});
