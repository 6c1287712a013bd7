import { HangarError } from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The backup repository's password: made on this host, 0600, read only by restic and `hangar-agent backup key`. */
export function backupPasswordFile(dataDir: string): string {
  return join(dataDir, 'backups', 'password');
}

/** The password file, made (256 random bits) the first time a repository is used. */
export function ensureBackupKey(dataDir: string): string {
  const file = backupPasswordFile(dataDir);
  mkdirSync(join(dataDir, 'backups'), { recursive: true, mode: 0o700 });
  if (!existsSync(file)) {
    // 'wx': two agents on one data dir never overwrite each other's key.
    try {
      writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return file;
}

/** For `hangar-agent backup key`, on the host itself. */
export function readBackupKey(dataDir: string): string {
  const file = backupPasswordFile(dataDir);
  if (!existsSync(file)) {
    throw new HangarError(
      'E_BACKUP_NOT_SET',
      `no backup key yet in ${file}: it is made with the first backup (hangar backup now <host>)`,
    );
  }
  return readFileSync(file, 'utf8').trim();
}
