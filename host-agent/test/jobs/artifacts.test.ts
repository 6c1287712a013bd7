import type { ArtifactInfo, CloseReason } from '@hangar/shared';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startJobHost, type TestClient } from './fixture.js';

async function fetchArtifact(client: TestClient, id: string, path: string, from?: number) {
  const stream = client.openStream(from);
  const chunks: Buffer[] = [];
  stream.onData((data) => chunks.push(Buffer.from(data)));
  const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
  const info = await client.call<ArtifactInfo>('artifact.fetch', { id, path, stream_id: stream.id, from });
  const reason = await closed;
  return { info, data: Buffer.concat(chunks), reason };
}

describe('artifacts', () => {
  it('matches of the globs are stored with sha256 and size, listed and fetched byte for byte', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const job = await host.submit({
      command:
        'mkdir -p build/out && head -c 3000000 /dev/urandom > build/out/app.ipa && echo log > build/x.log && echo src > main.c',
      executor: 'shell',
      artifacts: ['build/**/*.ipa', '*.c'],
    });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });
    const { artifacts } = await client.call<{ artifacts: ArtifactInfo[] }>('artifact.list', { id: job.id });
    expect(artifacts.map((a) => a.path)).toEqual(['build/out/app.ipa', 'main.c']);
    const fetched = await fetchArtifact(client, job.id, 'build/out/app.ipa');
    expect(fetched.reason.code).toBe('artifact_end');
    expect(fetched.data.length).toBe(3_000_000);
    expect(createHash('sha256').update(fetched.data).digest('hex')).toBe(artifacts[0]!.sha256);
    expect(fetched.info).toEqual(artifacts[0]);
    // A client that already has a prefix (a dropped link) asks for the rest.
    const rest = await fetchArtifact(client, job.id, 'build/out/app.ipa', 2_000_001);
    expect(rest.data.equals(fetched.data.subarray(2_000_001))).toBe(true);
    await expect(fetchArtifact(client, job.id, 'build/out/app.ipa', 3_000_001)).rejects.toMatchObject({
      code: 'E_BAD_REQUEST',
    });
    await expect(fetchArtifact(client, job.id, 'build/x.log')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(fetchArtifact(client, job.id, '../../agent.db')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('a glob with .. or an absolute path is refused at submit', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    for (const glob of ['../*', '/etc/passwd', 'a/../../b']) {
      await expect(client.callUnchecked('job.submit', { command: 'true', artifacts: [glob] })).rejects.toMatchObject({
        code: 'E_BAD_REQUEST',
      });
    }
  });

  it('an artifact that leads outside the workdir is refused and fails the job; wildcards never leave it', async () => {
    await using host = await startJobHost();
    const outside = mkdtempSync(join(tmpdir(), 'hangar-secret-'));
    try {
      writeFileSync(join(outside, 'secret'), 'do not take me');
      for (const [command, glob] of [
        [`ln -s ${outside}/secret stolen`, 'stolen'],
        [`mkdir -p build && ln -s ${outside}/secret build/app.ipa`, 'build/app.ipa'],
      ] as const) {
        const job = await host.submit({ command, executor: 'shell', artifacts: [glob], retries: 2 });
        const done = await host.waitFor(job.id);
        expect(done, glob).toMatchObject({ state: 'failed', attempt: 1, artifacts: [] });
        expect(done.error).toMatch(/outside the job's workdir; it was not collected \(.*have the job copy the file/);
      }
      // Wildcards do not descend into symlinked directories, nor climb out with a brace pattern.
      const job = await host.submit({
        command: `ln -s ${outside} dir && mkdir a && echo in > a/x`,
        executor: 'shell',
        artifacts: ['dir/*', '**/secret', '{..,a}/*'],
      });
      const done = await host.waitFor(job.id);
      expect(done.state).toBe('succeeded');
      expect(done.artifacts.map((a) => a.path)).toEqual(['a/x']);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
