import { HangarError, toHangarError, type BackupProgress, type BackupRun, type Disposable } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * How often the core asks the host for a run it waits for, besides the host's own events: an event
 * lost while the link was down (it comes back by itself) must not leave the caller waiting forever.
 */
const POLL_MS = 2_000;

/** The link's own trouble: asked again at the next poll, as the connection comes back. */
const PASSING = new Set(['E_HOST_UNREACHABLE', 'E_TIMEOUT', 'E_UNAVAILABLE']);

/**
 * Starts a host's backup or restore (`start`: backup.now or backup.restore, which answer at once
 * with the running run) and answers with the run once it ended. Progress of that run meanwhile to
 * `onProgress`. The host's events are listened to before the call, so an end that comes before its
 * answer is not missed.
 */
export async function runToEnd(
  connection: HostConnection,
  start: () => Promise<BackupRun>,
  onProgress: (progress: BackupProgress) => void,
): Promise<BackupRun> {
  const ended = new Map<string, BackupRun>();
  let waiting: { id: string; resolve: (run: BackupRun) => void } | undefined;
  const subscriptions: Disposable[] = [
    connection.on('backup.progress', (progress) => {
      if (waiting?.id === progress.run) onProgress(progress);
    }),
    connection.on('backup.updated', ({ run }) => {
      if (run.state === 'running') return;
      ended.set(run.id, run);
      if (waiting?.id === run.id) waiting.resolve(run);
    }),
  ];
  let poll: NodeJS.Timeout | undefined;
  try {
    const run = await start();
    if (run.state !== 'running') return run;
    return await new Promise<BackupRun>((resolve, reject) => {
      const known = ended.get(run.id);
      if (known) return resolve(known);
      waiting = { id: run.id, resolve };
      poll = setInterval(() => {
        connection.call('backup.status', {}).then(
          (status) => {
            if (status.running?.id === run.id) return;
            const found = status.recent.find((r) => r.id === run.id);
            if (found && found.state !== 'running') resolve(found);
            else if (!found) {
              reject(
                new HangarError('E_NOT_FOUND', `the host no longer knows run ${run.id}; see: hangar backup status`),
              );
            }
          },
          (error: unknown) => {
            if (!PASSING.has(toHangarError(error).code)) reject(error);
          },
        );
      }, POLL_MS);
    });
  } finally {
    if (poll) clearInterval(poll);
    for (const subscription of subscriptions) void subscription.dispose();
  }
}
