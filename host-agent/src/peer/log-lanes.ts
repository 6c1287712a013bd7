import { closeSync } from 'node:fs';
import { type NativeLanes, type Relay } from '@hangar/lane';
import { HangarError } from '@hangar/shared';
import { openLogSync, type JobService } from '../jobs/index.js';
import type { LanePurposeHandler, LaneTaken } from '../link/lanes.js';
import { sendFileOnLane } from './file-lanes.js';

/**
 * The lane purpose `log` (lane/PROTOCOL.md, "Purposes: log"): what `job.logs` sends on a mux
 * stream, read from the attempt's log file by the native relay (pread) instead. The same checks
 * as that call (jobs belong to the host: any paired device's link may read any job's log; the
 * job and attempt must exist; `from` past the end of a final log is refused). The relay's limit
 * is the size the log source reports (AttemptLog: bytes already in the file, never more), moved
 * forward as it learns new sizes and made final when the attempt ends; then EOF. The job's status
 * and exit code stay on the link (`job.get`).
 */
export function logLanes(jobs: JobService, native: NativeLanes): LanePurposeHandler<'log'> {
  return async (hello, _link, log): Promise<LaneTaken> => {
    const { attempt, source } = jobs.logs(hello.id, hello.attempt);
    const first = source.state();
    if (hello.from > first.size && first.final !== undefined) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `log of attempt ${attempt} has ${first.size} bytes; cannot start at ${hello.from}`,
      );
    }
    if (first.path === undefined) {
      // A queued job's attempt has no file yet: the mux stream waits for it (the client falls back).
      throw new HangarError('E_UNAVAILABLE', `attempt ${attempt} of ${hello.id} has not started; no log file yet`);
    }
    // Opened before ACCEPT: a log gone meanwhile (pruned) is a REFUSE, not a lane that breaks; so is
    // one that is no longer the file the agent wrote (a symlink, a FIFO: openLogSync).
    let fd: number | undefined = openLogSync(first.path);
    const closeFile = () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    };
    return {
      accept: { attempt },
      run(lane): Relay {
        const local = fd;
        if (local === undefined) throw new Error('the lane already ran or was abandoned');
        try {
          // Subscribed before the size is read again, so no growth falls between the two.
          let relay: Relay | undefined;
          const moved = () => {
            if (!relay) return;
            const state = source.state();
            relay.fileLimit(Math.max(state.size, hello.from), state.final !== undefined || !hello.follow);
          };
          const subscription = source.onChange(moved);
          const now = source.state();
          const growing = hello.follow && now.final === undefined;
          try {
            relay = sendFileOnLane(
              native,
              lane,
              local,
              { offset: hello.from, limit: Math.max(now.size, hello.from), growing },
              log,
              {
                fields: { job: hello.id, attempt, from: hello.from, follow: hello.follow },
                sent: 'log sent on a lane',
                ended: 'log lane ended',
              },
              () => {
                void subscription.dispose();
                relay = undefined;
              },
            );
          } catch (error) {
            void subscription.dispose();
            throw error;
          }
          fd = undefined; // the relay owns it now (closeLocal)
          if (growing) moved(); // a change between the read above and the subscription's first event
          return relay;
        } catch (error) {
          closeFile();
          throw error;
        }
      },
      abandon: closeFile,
    };
  };
}
