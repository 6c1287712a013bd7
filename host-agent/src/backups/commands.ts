import type { Command } from 'commander';
import { resolve } from 'node:path';
import { AgentStore } from '../store/db.js';
import { readBackupKey, unlockRepository } from './index.js';

/**
 * `hangar-agent backup …`: what only the host itself may do. The key never crosses a link: these
 * read it from the data directory, on the host, for the user who runs them.
 */
export function registerBackupCommands(program: Command, defaultData: string, fail: (error: unknown) => never): void {
  const backup = program
    .command('backup')
    .description("this host's backups (set them up from your computer: hangar backup)");

  backup
    .command('key')
    .description(
      "print the backup repository's password: copy it somewhere safe, since a lost host takes its key with it",
    )
    .option('--data <dir>', 'data directory of the agent', defaultData)
    .action((options: { data: string }) => {
      try {
        process.stdout.write(`${readBackupKey(resolve(options.data))}\n`);
      } catch (error) {
        fail(error);
      }
    });

  backup
    .command('unlock')
    .description('remove stale locks from the backup repository (left by a restic that was killed)')
    .option('--data <dir>', 'data directory of the agent', defaultData)
    .action(async (options: { data: string }) => {
      try {
        const dataDir = resolve(options.data);
        const store = AgentStore.open(dataDir);
        try {
          const repository = await unlockRepository(dataDir, store.db);
          process.stdout.write(`removed stale locks from ${repository}\n`);
        } finally {
          store.dispose();
        }
      } catch (error) {
        fail(error);
      }
    });
}
