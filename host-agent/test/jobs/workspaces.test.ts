import type { JobInfo } from '@hangar/shared';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startJobHost, type TestClient } from './fixture.js';
import { sha256, tarball, type TarEntry } from './tarball.js';

async function upload(client: TestClient, data: Buffer, announced = data.length, hash = sha256(data)) {
  const stream = client.openStream();
  const closed = new Promise((resolve) => stream.onClose(resolve));
  await client.call('workspace.upload', { hash, size: announced, stream_id: stream.id });
  for (let at = 0; at < data.length; at += 32 * 1024) {
    if (!stream.write(data.subarray(at, at + 32 * 1024))) {
      await new Promise<void>((resolve) => {
        const d = stream.onDrain(() => {
          d.dispose();
          resolve();
        });
      });
    }
  }
  stream.close({ code: 'done', message: 'sent' });
  await closed;
  return client.call<{ present: true; size: number }>('workspace.commit', { hash });
}

describe('workspaces', () => {
  it('an uploaded tarball is stored by its hash and unpacked into each attempt’s fresh workdir', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const archive = tarball([
      { path: 'src/', type: 'dir' },
      { path: 'src/hello.txt', type: 'file', body: 'hello from the laptop\n' },
      { path: 'link-to-hello', type: 'symlink', linkpath: 'src/hello.txt' },
      { path: 'hard-hello', type: 'link', linkpath: 'src/hello.txt' },
    ]);
    const hash = sha256(archive);
    expect(await client.call('workspace.has', { hash })).toEqual({ present: false });
    expect(await upload(client, archive)).toEqual({ present: true, size: archive.length });
    expect(await client.call('workspace.has', { hash })).toEqual({ present: true });
    expect(existsSync(join(host.dataDir, 'workspaces', `${hash}.tar`))).toBe(true);
    const job = await client.call<JobInfo>('job.submit', {
      command: 'cat link-to-hello hard-hello; touch leftover',
      executor: 'shell',
      workspace: hash,
    });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });
    expect((await client.readLog(job.id)).data.toString()).toBe('hello from the laptop\n'.repeat(2));
    await client.call('job.retry', { id: job.id });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded', attempt: 2 });
  });

  it("an archive of nothing (node-tar's 1 KiB end marker, GNU tar's 10 KiB record) unpacks to an empty workdir", async () => {
    await using host = await startJobHost();
    const client = host.connect();
    for (const empty of [Buffer.alloc(1024), Buffer.alloc(10240)]) {
      expect(await upload(client, empty)).toEqual({ present: true, size: empty.length });
      const job = await client.call<JobInfo>('job.submit', {
        command: 'test -z "$(ls -A)"',
        executor: 'shell',
        workspace: sha256(empty),
      });
      expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });
    }
  });

  it('a job without a workspace gets an empty workdir; an unknown workspace is refused at submit', async () => {
    await using host = await startJobHost();
    const job = await host.submit({ command: 'test -z "$(ls -A)"', executor: 'shell' });
    expect(await host.waitFor(job.id)).toMatchObject({ state: 'succeeded' });
    await expect(host.submit({ command: 'true', workspace: 'f'.repeat(64) })).rejects.toMatchObject({
      code: 'E_WORKSPACE_MISSING',
    });
  });

  it('an upload larger than the limit is refused before any byte is sent', async () => {
    await using host = await startJobHost({ workspaceLimit: 1000 });
    const client = host.connect();
    const stream = client.openStream();
    await expect(
      client.call('workspace.upload', { hash: 'a'.repeat(64), size: 1001, stream_id: stream.id }),
    ).rejects.toMatchObject({
      code: 'E_WORKSPACE_TOO_LARGE',
      message: expect.stringMatching(/more than this host accepts/),
    });
  });

  it('bytes that do not match the announced hash or size are discarded', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const data = Buffer.from('not what was announced');
    await expect(upload(client, data, data.length, 'b'.repeat(64))).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
    await expect(upload(client, data, data.length + 5)).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
    expect(readdirSync(join(host.dataDir, 'workspaces'))).toEqual([]);
  });

  const hostile: [string, (outside: string) => TarEntry[]][] = [
    ['a path with ..', () => [{ path: '../escaped', type: 'file', body: 'x' }]],
    ['an absolute path', (outside) => [{ path: join(outside, 'escaped'), type: 'file', body: 'x' }]],
    ['a symlink out', (outside) => [{ path: 'out', type: 'symlink', linkpath: outside }]],
    ['a relative symlink out', () => [{ path: 'a/out', type: 'symlink', linkpath: '../../../..' }]],
    [
      'a chain of symlinks that leads out',
      () => [
        { path: 'here', type: 'symlink', linkpath: '.' },
        { path: 'up', type: 'symlink', linkpath: 'here/..' },
      ],
    ],
    ['a hard link out', () => [{ path: 'passwd', type: 'link', linkpath: '../../../../etc/passwd' }]],
    ['a device file', () => [{ path: 'null', type: 'chardev' }]],
    [
      'a write through a symlink',
      (outside) => [
        { path: 'dir', type: 'symlink', linkpath: outside },
        { path: 'dir/escaped', type: 'file', body: 'x' },
      ],
    ],
  ];

  for (const [name, entries] of hostile) {
    it(`a workspace with ${name} is refused, with nothing written outside the workdir`, async () => {
      await using host = await startJobHost();
      const outside = mkdtempSync(join(tmpdir(), 'hangar-outside-'));
      try {
        const client = host.connect();
        const archive = tarball([{ path: 'ok.txt', type: 'file', body: 'fine' }, ...entries(outside)]);
        await upload(client, archive);
        const job = await host.submit({
          command: 'echo ran',
          workspace: sha256(archive),
          executor: 'shell',
          retries: 2,
        });
        const done = await host.waitFor(job.id);
        expect(done).toMatchObject({ state: 'failed', attempt: 1 });
        expect(done.error).toMatch(/^workspace entry ".*" /);
        const log = (await client.readLog(job.id)).data.toString();
        expect(log).not.toContain('ran');
        expect(readdirSync(outside)).toEqual([]);
        expect(existsSync(join(host.dataDir, 'jobs', job.id, 'escaped'))).toBe(false);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });
  }
});
