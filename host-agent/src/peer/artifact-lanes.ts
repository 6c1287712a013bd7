import { closeSync } from 'node:fs';
import { type NativeLanes, type Relay } from '@hangar/lane';
import { HangarError } from '@hangar/shared';
import { openArtifactCopy, type JobService } from '../jobs/index.js';
import type { LanePurposeHandler, LaneTaken } from '../link/lanes.js';
import { sendFileOnLane } from './file-lanes.js';

/**
 * The lane purpose `artifact` (lane/PROTOCOL.md, "Purposes: artifact"): what `artifact.fetch`
 * sends on a mux stream, read from the file by the native relay (pread) instead. The same checks
 * as that call: jobs belong to the host, so any paired device's link may fetch any job's
 * artifacts; the path is looked up among the job's recorded artifacts (JobService.artifactFile),
 * never opened as the network gave it, and opened as that call opens it (openArtifactCopy).
 */
export function artifactLanes(jobs: JobService, native: NativeLanes): LanePurposeHandler<'artifact'> {
  return async (hello, _link, log): Promise<LaneTaken> => {
    const { info, dir } = jobs.artifactFile(hello.id, hello.path);
    if (hello.from > info.size) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `artifact "${info.path}" has ${info.size} bytes; cannot start at ${hello.from}`,
      );
    }
    // Opened before ACCEPT: a file gone meanwhile (pruned) is a REFUSE, not a lane that breaks; so
    // is one that is no longer the collected copy (a symlink, a FIFO, another size: openArtifactCopy).
    let fd: number | undefined = openArtifactCopy(dir, info, hello.id);
    const closeFile = () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    };
    return {
      // Not the path: it may be 4 KiB on its own, and the client knows it.
      accept: { size: info.size, sha256: info.sha256 },
      run(lane): Relay {
        const local = fd;
        if (local === undefined) throw new Error('the lane already ran or was abandoned');
        try {
          const relay = sendFileOnLane(native, lane, local, { offset: hello.from, limit: info.size }, log, {
            fields: { job: hello.id, path: info.path, from: hello.from },
            sent: 'artifact sent on a lane',
            ended: 'artifact lane ended',
          });
          fd = undefined; // the relay owns it now (closeLocal)
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
