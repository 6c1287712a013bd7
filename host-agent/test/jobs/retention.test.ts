import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startJobHost } from './fixture.js';
import { sha256, tarball } from './tarball.js';

describe('retention', () => {
  it('keeps logs and artifacts under the byte limit, removing the oldest finished jobs first', async () => {
    await using host = await startJobHost({ retention: { maxAgeMs: 3600_000, maxBytes: 250_000 } });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const job = await host.submit({ command: 'head -c 100000 /dev/zero', executor: 'shell' });
      await host.waitFor(job.id);
      ids.push(job.id);
    }
    await host.jobs.prune();
    const kept = host.jobs.list(100).map((j) => j.id);
    expect(kept.sort()).toEqual(ids.slice(2).sort());
    expect(existsSync(join(host.dataDir, 'jobs', ids[0]!))).toBe(false);
    expect(readdirSync(join(host.dataDir, 'jobs')).sort()).toEqual(ids.slice(2).sort());
  });

  it('a prune asked for while one runs sees what changed meanwhile (a job that ended during it)', async () => {
    await using host = await startJobHost({ retention: { maxAgeMs: 3600_000, maxBytes: 1e12 } });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const job = await host.submit({ command: 'echo kept', executor: 'shell' });
      await host.waitFor(job.id);
      ids.push(job.id);
    }
    await host.jobs.prune();
    // The first prune has read what there is to remove (nothing) when the second is asked for;
    // in between a job becomes old enough to go, as a job ending during a prune makes it too big.
    const running = host.jobs.prune();
    host.store.db.prepare('UPDATE jobs SET finished_at = 0 WHERE id = ?').run(ids[0]);
    await host.jobs.prune();
    await running;
    expect(host.jobs.list(100).map((j) => j.id)).toEqual([ids[1]]);
    expect(existsSync(join(host.dataDir, 'jobs', ids[0]!))).toBe(false);
  });

  it('removes finished jobs and unused workspaces older than the age limit, never queued work', async () => {
    await using host = await startJobHost({ retention: { maxAgeMs: 3600_000, maxBytes: 1e12 }, maxJobs: 1 });
    const old = await host.submit({ command: 'echo old', executor: 'shell' });
    await host.waitFor(old.id);
    const archive = tarball([{ path: 'f', type: 'file', body: 'x' }]);
    const unused = tarball([{ path: 'g', type: 'file', body: 'y' }]);
    // Workspaces straight through the store: the upload path has its own tests.
    for (const data of [archive, unused]) {
      const path = host.jobs.workspaces.path(sha256(data));
      writeFileSync(path, data);
      host.store.db
        .prepare('INSERT INTO workspaces (hash, size, created_at, last_used_at) VALUES (?, ?, 0, 0)')
        .run(sha256(data), data.length);
    }
    const blocker = await host.submit({ command: 'sleep 30', executor: 'shell' });
    await host.waitFor(blocker.id, ['running']);
    const waiting = await host.submit({ command: 'cat f', executor: 'shell', workspace: sha256(archive) });
    host.store.db.prepare('UPDATE jobs SET finished_at = 0 WHERE id = ?').run(old.id);
    await host.jobs.prune();
    expect(() => host.jobs.get(old.id)).toThrow(/no job/);
    expect(host.jobs.workspaces.has(sha256(unused))).toBe(false);
    expect(host.jobs.workspaces.has(sha256(archive))).toBe(true);
    await host.jobs.cancel(blocker.id);
    expect(await host.waitFor(waiting.id)).toMatchObject({ state: 'succeeded' });
  });
});
