import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackupSettings } from '@hangar/shared';
import { BackupService } from '../../src/backups/index.js';
import { AgentStore } from '../../src/store/db.js';

describe('the backup schedule', () => {
  let dir: string | undefined;

  afterEach(async () => {
    vi.useRealTimers();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('looks whether a backup is due only while a schedule is set: an agent without one arms no timer', async () => {
    dir = await mkdtemp(join(tmpdir(), 'hangar-backup-schedule-'));
    const store = AgentStore.open(join(dir, 'agent'));
    // Intervals only are faked, to count the ones armed; nothing here waits on one.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const backups = new BackupService({
      db: store.db,
      dataDir: join(dir, 'agent'),
      publish: () => undefined,
      logger: pino({ level: 'silent' }),
    });
    try {
      expect(vi.getTimerCount()).toBe(0);
      await backups.set(BackupSettings.parse({ paths: [dir], every_s: 3600 }));
      expect(vi.getTimerCount()).toBe(1);
      await backups.set(BackupSettings.parse({ paths: [dir] })); // on demand only
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      await backups.dispose();
      store.dispose();
    }
  });
});
