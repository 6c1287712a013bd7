import type { BackupService } from '../backups/index.js';
import type { BackupProcedureTable } from './procedures.js';

/**
 * The backup calls. Backups belong to the host, like its sessions: every paired device may set
 * them up, run, list and restore them. The repository's password is not among anything these
 * answer: it stays in the agent's data directory (hangar-agent backup key prints it, on the host).
 */
export function createBackupProcedures(backups: BackupService): BackupProcedureTable {
  return {
    'backup.set': async (params) => ({ result: await backups.set(params) }),
    'backup.status': async () => ({ result: await backups.status() }),
    'backup.now': async () => ({ result: backups.now('user') }),
    'backup.snapshots': async () => ({ result: { snapshots: await backups.snapshots() } }),
    'backup.restore': async (params) => ({ result: await backups.restore(params) }),
  };
}
