import { HangarError, toHangarError, type BackupProgress, type BackupRun, type Disposable } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * How often the core asks the host for a run it waits for, besides the host's own events: an event
 * lost while the link was down (it comes back by itself) must not leave the caller waiting forever.
 */
const POLL_MS = 2_000;

/**
 * How long the wait goes on without a word from the host about the run (no progress, no status
 * saying it runs): the link stayed down, or the host's calls hang. A run may take hours; this bounds
 * only the silence. The run itself goes on on the host.
 */
const QUIET_MS = 5 * 60_000;

/** The link's own trouble: asked again at the next poll, as the connection comes back. */
const PASSING = new Set(['E_HOST_UNREACHABLE', 'E_TIMEOUT', 'E_UNAVAILABLE']);

export interface RunToEndOptions {
  /** The host's name, for the message that tells where to look. */
  host: string;
  pollMs?: number;
  quietMs?: number;
  /** The host accepted: the run is running (not called for one that ended at once). */
  onStarted?: (run: BackupRun) => void;
}

/** What the wait talks to the host through. */
type Link = Pick<HostConnection, 'call' | 'on'>;

/**
 * Starts a host's backup or restore (`start`: backup.now or backup.restore, which answer at once
 * with the running run) and answers with the run once it ended. Progress of that run meanwhile to
 * `onProgress`. The host's events are listened to before the call, so an end that comes before its
 * answer is not missed. One status call at a time (the next is asked `pollMs` after the last one
 * answered, so a hanging call never piles up others); after `quietMs` without a word from the host
 * about the run, the wait ends with an error saying the run goes on there and where to see it.
 * `link` answers the host's connection as it is now: the core replaces a host's connection when its
 * address changes (the embedded agent restarted on another port), and the one it dropped answers
 * nothing any more, so each status call and the events go through the current one.
 */
export async function runToEnd(
  link: () => Link,
  start: () => Promise<BackupRun>,
  onProgress: (progress: BackupProgress) => void,
  options: RunToEndOptions,
): Promise<BackupRun> {
  const pollMs = options.pollMs ?? POLL_MS;
  const quietMs = options.quietMs ?? QUIET_MS;
  const ended = new Map<string, BackupRun>();
  let waiting: { id: string; resolve: (run: BackupRun) => void; heard: () => void } | undefined;
  let subscribed: Link | undefined;
  let subscriptions: Disposable[] = [];
  const unsubscribe = () => {
    for (const subscription of subscriptions.splice(0)) void subscription.dispose();
  };
  /** The current connection, listened to (again, when it is a new one). */
  const current = (): Link => {
    const connection = link();
    if (connection === subscribed) return connection;
    unsubscribe();
    subscribed = connection;
    subscriptions = [
      connection.on('backup.progress', (progress) => {
        if (waiting?.id !== progress.run) return;
        waiting.heard();
        onProgress(progress);
      }),
      connection.on('backup.updated', ({ run }) => {
        if (run.state === 'running') return;
        ended.set(run.id, run);
        if (waiting?.id === run.id) waiting.resolve(run);
      }),
    ];
    return connection;
  };
  current();
  let poll: NodeJS.Timeout | undefined;
  let quiet: NodeJS.Timeout | undefined;
  let done = false;
  try {
    const run = await start();
    if (run.state !== 'running') return run;
    options.onStarted?.(run);
    return await new Promise<BackupRun>((resolve, reject) => {
      const known = ended.get(run.id);
      if (known) return resolve(known);
      const giveUp = () =>
        reject(
          new HangarError(
            'E_TIMEOUT',
            `no word from ${options.host} about the ${run.kind} (${run.id}) for ${Math.round(quietMs / 1000)} s (the link is down or the host does not answer); the ${run.kind} goes on on the host: see it with: hangar backup status ${options.host}`,
            { run: run.id },
          ),
        );
      const heard = () => {
        clearTimeout(quiet);
        quiet = setTimeout(giveUp, quietMs);
      };
      heard();
      waiting = { id: run.id, resolve, heard };
      const ask = () => {
        current()
          .call('backup.status', {})
          .then(
            (status) => {
              if (done) return;
              if (status.running?.id === run.id) {
                heard();
                poll = setTimeout(ask, pollMs);
                return;
              }
              const found = status.recent.find((r) => r.id === run.id);
              if (found && found.state !== 'running') resolve(found);
              else if (!found) {
                reject(
                  new HangarError(
                    'E_NOT_FOUND',
                    `the host no longer knows run ${run.id}; see: hangar backup status ${options.host}`,
                  ),
                );
              } else poll = setTimeout(ask, pollMs);
            },
            (error: unknown) => {
              if (done) return;
              if (!PASSING.has(toHangarError(error).code)) reject(error);
              else poll = setTimeout(ask, pollMs);
            },
          );
      };
      poll = setTimeout(ask, pollMs);
    });
  } finally {
    done = true;
    clearTimeout(poll);
    clearTimeout(quiet);
    unsubscribe();
  }
}
