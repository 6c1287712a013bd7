import type { CORE_PROCEDURES, ProcedureHandlers } from '@hangar/shared';
import { runToEnd } from '../backups/index.js';
import type { ApiContext } from './handlers.js';

type BackupMethod = Extract<keyof typeof CORE_PROCEDURES, `backups.${string}`>;

/**
 * The backup calls of CORE_PROCEDURES: each is one host's, carried over the link to its agent
 * (never through the relay's servers, whose splice only forwards the link's encrypted bytes). A
 * backup or restore is answered when it ended; its progress goes to the calling connection only.
 */
export const backupHandlers: Pick<ProcedureHandlers<typeof CORE_PROCEDURES, ApiContext>, BackupMethod> = {
  'backups.set': async (params, { core }) => ({
    result: await core.connection(params.host).call('backup.set', params.settings),
  }),

  'backups.status': async (params, { core }) => ({
    result: await core.connection(params.host).call('backup.status', {}),
  }),

  'backups.now': async (params, { core, publish }) => {
    const run = await runToEnd(
      () => core.connection(params.host),
      () => core.connection(params.host).call('backup.now', {}),
      (progress) => publish('backup.progress', { ...progress, host: params.host }),
      { host: params.host, onStarted: (run) => publish('backup.started', { host: params.host, run }) },
    );
    return { result: { run } };
  },

  'backups.list': async (params, { core }) => ({
    result: await core.connection(params.host).call('backup.snapshots', {}),
  }),

  'backups.restore': async (params, { core, publish }) => {
    const { host, ...restore } = params;
    const run = await runToEnd(
      () => core.connection(host),
      () => core.connection(host).call('backup.restore', restore),
      (progress) => publish('backup.progress', { ...progress, host }),
      { host, onStarted: (run) => publish('backup.started', { host, run }) },
    );
    return { result: { run } };
  },
};
