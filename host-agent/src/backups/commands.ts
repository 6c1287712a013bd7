import { HangarError } from '@hangar/shared';
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentStore, agentDbPath } from '../store/db.js';
import { readBackupKey, unlockRepository } from './index.js';

/**
 * `hangar-agent backup …`: what only the host itself may do. The key never crosses a link: these
 * read it from the data directory, on the host, for the user who runs them.
 */
/**
 * The data directory of an agent that exists: these commands never make one (opening the store
 * would create `agent.db`, and a key made there would be no repository's). `npm start`'s agent is
 * not in the default directory, which is the trap this names.
 */
function agentData(dir: string): string {
  const dataDir = resolve(dir);
  if (!existsSync(agentDbPath(dataDir))) {
    throw new HangarError(
      'E_BACKUP_NOT_SET',
      `no agent data in ${dataDir}: name the data directory of the agent that backs up with --data (the one its serve was given; npm start's embedded agent uses ~/.hangar/agent, that is $HANGAR_HOME/agent)`,
    );
  }
  return dataDir;
}

export function registerBackupCommands(program: Command, defaultData: string, fail: (error: unknown) => never): void {
  const backup = program
    .command('backup')
    .description("this host's backups: key, unlock (set them up from your computer: hangar backup)");

  backup
    .command('key')
    .description(
      "print the backup repository's password: copy it somewhere safe, since a lost host takes its key with it",
    )
    .option('--data <dir>', 'data directory of the agent', defaultData)
    .action((options: { data: string }) => {
      try {
        process.stdout.write(`${readBackupKey(agentData(options.data))}\n`);
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
        const dataDir = agentData(options.data);
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
