import { HangarError } from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** The backup repository's password: made on this host, 0600, read only by restic and `hangar-agent backup key`. */
export function backupPasswordFile(dataDir: string): string {
  return join(dataDir, 'backups', 'password');
}

/**
 * The password file, made (256 random bits) the first time a repository is used. Made whole or not
 * at all: written to a 0600 file of its own, then linked to its name, which fails if one is there
 * (two agents on one data dir never overwrite each other's key). An empty file (a crash between
 * making and writing it, before this was so) is no key restic takes, and is replaced. A key file
 * others may read is made 0600 again.
 */
export function ensureBackupKey(dataDir: string): string {
  const file = backupPasswordFile(dataDir);
  mkdirSync(join(dataDir, 'backups'), { recursive: true, mode: 0o700 });
  const info = lstatSync(file, { throwIfNoEntry: false });
  if (info && info.isFile() && info.size > 0) {
    if ((info.mode & 0o077) !== 0) chmodSync(file, 0o600);
    return file;
  }
  if (info && !info.isFile()) {
    throw new HangarError(
      'E_BACKUP_FAILED',
      `${file} is not a file: the backup key must be a plain file there (made by the agent, 0600)`,
    );
  }
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (info) {
      // Empty: no repository can have been made with it (restic refuses an empty password).
      renameSync(temp, file);
      return file;
    }
    try {
      linkSync(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  } finally {
    rmSync(temp, { force: true });
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
