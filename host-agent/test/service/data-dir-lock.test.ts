import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../src/service/data-dir-lock.js';

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-lock-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The lock socket an agent killed with SIGKILL leaves behind: a socket file nobody listens on. */
function leaveStaleLock(dir: string): void {
  mkdirSync(join(dir, 'run'), { recursive: true });
  const path = join(dir, 'run', 'agent.lock');
  const script = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script]);
  expect(existsSync(path)).toBe(true);
}

describe.skipIf(process.platform === 'win32')('the data dir lock', () => {
  it('of two agents starting at once over a dead agent’s lock, only one takes it over', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = dataDir();
      leaveStaleLock(dir);
      const results = await Promise.allSettled([lockDataDir(dir, 300), lockDataDir(dir, 300)]);
      for (const result of results) if (result.status === 'fulfilled') cleanups.push(() => result.value?.close());
      const held = results
        .filter((result) => result.status === 'fulfilled')
        .map((r) => (r as PromiseFulfilledResult<Server | undefined>).value);
      expect(held, `round ${round}`).toHaveLength(1);
      expect(held[0]).toBeDefined();
      const refused = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
      expect(String(refused.reason)).toContain('stop it first');
    }
  });

  it.skipIf(process.platform !== 'linux')(
    'a data dir whose socket path is too long for a Unix socket is locked too',
    async () => {
      const dir = join(dataDir(), 'a-data-dir-deep-under-a-long-home'.repeat(3));
      mkdirSync(dir);
      expect(Buffer.byteLength(join(dir, 'run', 'agent.lock'))).toBeGreaterThan(108);
      const first = await lockDataDir(dir, 300);
      cleanups.push(() => first?.close());
      expect(first).toBeDefined();
      await expect(lockDataDir(dir, 300)).rejects.toThrow(/stop it first/);
      // Once it is closed, the next one gets it.
      first!.close();
      const next = await lockDataDir(dir, 300);
      cleanups.push(() => next?.close());
      expect(next).toBeDefined();
    },
  );
});
