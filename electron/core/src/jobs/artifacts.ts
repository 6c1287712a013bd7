import { type NativeLanes } from '@hangar/lane';
import {
  HangarError,
  LaneArtifactAccept,
  isHangarError,
  type ArtifactInfo,
  type DownloadedArtifact,
  type Mux,
} from '@hangar/shared';
import { constants, fstatSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { BatchedFileWriter } from './batched-file-writer.js';
import { FileHasher, type FileHash } from './file-hasher.js';
import { lanesHere, openLane, relayLaneToFd } from '../link/lanes.js';
import { MOVED, openPulledStream, retryOnNewLink, streamError, type JobLink } from './job-link.js';

export interface DownloadProgress {
  /** The artifact being fetched now. */
  path: string;
  done: number;
  total: number;
}

/** Tries per artifact that bring no new bytes; a try that got further resumes where it stopped. */
const FETCH_TRIES = 3;

/**
 * Downloads the artifacts of a job (all, or those at `only`) into `outDir`, keeping their
 * relative paths, each written to a temporary name and renamed only once its size and sha256
 * match what the agent recorded. A dropped link resumes the file at the byte the temporary file
 * has. A path in `only` that the job does not have is E_NOT_FOUND, before anything is fetched.
 */
export async function downloadArtifacts(
  connection: JobLink,
  jobId: string,
  outDir: string,
  onProgress?: (progress: DownloadProgress) => void,
  only?: readonly string[],
): Promise<DownloadedArtifact[]> {
  const retained = connection.retain();
  const hasher = new FileHasher();
  try {
    const listed = (await connection.call('artifact.list', { id: jobId })).artifacts;
    const missing = only?.filter((path) => !listed.some((a) => a.path === path)) ?? [];
    if (missing.length > 0) {
      throw new HangarError(
        'E_NOT_FOUND',
        `job ${jobId} has no artifact "${missing[0]}" (it has: ${listed.map((a) => a.path).join(', ') || 'none'})`,
      );
    }
    const artifacts = only ? listed.filter((a) => only.includes(a.path)) : listed;
    const total = artifacts.reduce((sum, a) => sum + a.size, 0);
    let before = 0;
    const downloaded: DownloadedArtifact[] = [];
    for (const artifact of artifacts) {
      const file = safeTarget(outDir, artifact.path);
      const base = before;
      const progress = (done: number) => onProgress?.({ path: artifact.path, done: base + done, total });
      await mkdir(dirname(file), { recursive: true });
      const partial = await createPartial(file);
      try {
        let had = 0;
        await retryOnNewLink(
          connection,
          FETCH_TRIES,
          () => fetchOne(connection, hasher, jobId, artifact, file, partial, progress),
          async (error) => {
            // Progress, or a move to a better path, is not a failed try.
            const have = await sizeOf(partial);
            const progressed = have > had || (isHangarError(error) && error.details?.['moved'] === true);
            had = have;
            return progressed;
          },
        );
      } finally {
        await rm(partial, { force: true });
      }
      before += artifact.size;
      progress(artifact.size);
      downloaded.push({ ...artifact, file });
    }
    return downloaded;
  } finally {
    hasher.dispose();
    retained.dispose();
  }
}

/**
 * A new, empty partial file beside `file`, this download's alone: created exclusively (never a file
 * or link already there) under a name no one else picks. One shared name let another download of
 * the same artifact into the same folder delete this one's file and have its own renamed into
 * place as this one's (checked here, the other half-written), and let an artifact named like
 * another's partial file (`.a.hangar-partial` beside `a`) be deleted by that one's download.
 */
async function createPartial(file: string): Promise<string> {
  const name = basename(file);
  // Within NAME_MAX (255 bytes) with the suffix; the name is never shown.
  const stem = Buffer.byteLength(name) <= 200 ? name : 'artifact';
  for (let tries = 1; ; tries++) {
    const partial = join(dirname(file), `.${stem}.${randomBytes(8).toString('hex')}.hangar-partial`);
    try {
      await (await open(partial, 'wx')).close();
      return partial;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 3) throw error;
    }
  }
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (info) => info.size,
    () => 0,
  );
}

/** The agent names the paths; a path that would land outside `outDir` is refused, not written. */
export function safeTarget(outDir: string, path: string): string {
  const root = resolve(outDir);
  const target = resolve(root, path);
  const rel = relative(root, target);
  if (path.includes('\0') || isAbsolute(path) || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new HangarError('E_ARTIFACT_UNSAFE', `the host named an artifact "${path}" outside the download folder`);
  }
  return target;
}

/** Fetches one artifact into `partial` from the byte it already has, then renames it into place. */
async function fetchOne(
  connection: JobLink,
  hasher: FileHasher,
  jobId: string,
  artifact: ArtifactInfo,
  file: string,
  partial: string,
  onProgress: (done: number) => void,
): Promise<void> {
  let have = await sizeOf(partial);
  if (have > artifact.size) {
    await rm(partial, { force: true });
    have = 0;
  }
  let received = have;
  // Open for reading too: on a lane the relay reads back what an earlier try wrote, to hash it.
  // Never through a link put in its place between tries.
  const out = await open(partial, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW);
  const native = connection.laneTarget !== undefined ? lanesHere() : undefined;
  if (native !== undefined && !('unavailable' in native)) {
    let onLane: boolean;
    try {
      onLane = await fetchOnLane(connection, native, jobId, artifact, out.fd, have, onProgress);
    } catch (error) {
      await out.close();
      throw error;
    }
    if (onLane) {
      await out.close();
      await rename(partial, file);
      return;
    }
  }
  // The sha256 covers the whole file as it is on disk, read back behind the writer (off the event
  // loop for a big file): what an earlier try wrote is hashed again from there too.
  const hash = hasher.open(partial, artifact.size);
  hash.written(have);
  let mux: Mux;
  let pulled: ReturnType<typeof openPulledStream>;
  try {
    // The link is taken right before its stream opens and the move watch starts (no await between).
    // Moved to a better path: this stream stops there and the fetch goes on on the new link from
    // the bytes the file has (the caller's retry), instead of running on the old link until retired.
    mux = await connection.link();
    pulled = openPulledStream(connection, mux, have);
  } catch (error) {
    await out.close();
    throw error;
  }
  const { stream, closed, movedOff } = pulled;
  // Ack once the file has the bytes: a slow disk slows the host's sending, not our memory.
  const writer = new BatchedFileWriter(out, (end) => {
    // Also once the stream has ended: the ack then sends nothing, but gives the read buffers back.
    stream.ack(end);
    hash.written(end);
    onProgress(end);
  });
  /** The host sent past the artifact's recorded size: stopped there, not written (a full disk). */
  let overran = false;
  stream.onData((data, at) => {
    if (overran) return;
    if (at + data.length > artifact.size) {
      overran = true;
      stream.close({ code: 'too_big', message: `more than the artifact's ${artifact.size} bytes` }, { flush: false });
      return;
    }
    received = at + data.length;
    writer.push(data, received);
  });
  try {
    try {
      await connection.call('artifact.fetch', { id: jobId, path: artifact.path, from: have, stream_id: stream.id });
    } catch (error) {
      stream.close({ code: 'cancelled', message: 'fetch refused' });
      throw error;
    }
    const reason = await closed;
    await writer.drained();
    if (overran) throw overrun(artifact, jobId);
    if (reason.code !== 'artifact_end') {
      if (mux.closed) throw new HangarError('E_UNAVAILABLE', `link dropped while fetching ${artifact.path}`);
      if (movedOff()) throw new HangarError('E_UNAVAILABLE', `${MOVED.message} (${artifact.path})`, { moved: true });
      throw streamError(`artifact ${artifact.path}`, reason);
    }
    await checkWhole(hash, received, artifact, jobId);
    await rename(partial, file);
  } finally {
    // Bytes written so far stay in the partial file for the next try, which reads its size.
    await writer.drained().catch(() => undefined);
    await out.close();
  }
}

/** The file has the artifact's size and sha256, or the download fails as damaged. */
async function checkWhole(hash: FileHash, received: number, artifact: ArtifactInfo, jobId: string): Promise<void> {
  checkDigest(await hash.digest(received), received, artifact, jobId);
}

function checkDigest(sha256: string, received: number, artifact: ArtifactInfo, jobId: string): void {
  if (received !== artifact.size || sha256 !== artifact.sha256) {
    throw new HangarError(
      'E_PROTOCOL',
      `artifact ${artifact.path} arrived damaged: ${received} bytes with sha256 ${sha256}, ` +
        `expected ${artifact.size} bytes with sha256 ${artifact.sha256}; download it again with: hangar artifacts ${jobId} ` +
        `(damaged again: the host's copy changed since the job recorded it; run the job again with: hangar retry ${jobId})`,
    );
  }
}

/** The host sent more than the size it recorded: the download stops there, as damaged. */
function overrun(artifact: ArtifactInfo, jobId: string): HangarError {
  return new HangarError(
    'E_PROTOCOL',
    `artifact ${artifact.path} arrived damaged: the host sent more than its recorded ${artifact.size} bytes; ` +
      `download it again with: hangar artifacts ${jobId}`,
  );
}

/** How often a lane's download looks at the file's size for progress. */
const LANE_PROGRESS_MS = 25;

/**
 * The bytes [have, size) of an artifact on a lane (lane/PROTOCOL.md, "Purposes: artifact"), written
 * to `partial` by the native relay, which hashes as it writes: first the `have` bytes the file
 * already has (read back), then each payload it takes for writing, hot in cache on its own thread
 * (bench:jobs: reading the file back on a worker thread behind the relay cost the core twice the
 * CPU per MB of the hash alone). Then checked as the mux path checks them. False: no lane (none
 * here, refused, or the agent's record differs from the listing), nothing written: the caller uses
 * the mux. A lane that breaks throws E_UNAVAILABLE; the bytes it wrote stay in `partial` for the
 * next try, which resumes from there.
 */
async function fetchOnLane(
  connection: JobLink,
  native: NativeLanes,
  jobId: string,
  artifact: ArtifactInfo,
  /** The partial file, open for reading and append (the relay writes to a dup of it). */
  partialFd: number,
  have: number,
  onProgress: (done: number) => void,
): Promise<boolean> {
  let lane: Awaited<ReturnType<typeof openLane>>;
  let mux: Mux;
  try {
    mux = await connection.link();
    lane = await openLane(connection as Parameters<typeof openLane>[0], {
      purpose: 'artifact',
      id: jobId,
      path: artifact.path,
      from: have,
    });
  } catch {
    return false; // refused or unreachable: the mux says the same (or carries it), with its own errors
  }
  const accepted = LaneArtifactAccept.safeParse(lane.accept);
  if (!accepted.success || accepted.data.size !== artifact.size || accepted.data.sha256 !== artifact.sha256) {
    lane.socket.destroy();
    return false;
  }
  const relay = relayLaneToFd(native, lane, partialFd, {
    localKind: 'file',
    // This side sends nothing (EOF at once), and takes no more than the artifact's rest.
    file: { offset: 0, limit: 0, receiveLimit: artifact.size - have, sha256: { prefix: have } },
  });
  if (relay === undefined) return false;
  // The relay owns its dup now: progress looks at the file's size.
  const look = () => onProgress(fstatSync(partialFd).size);
  const ticker = setInterval(look, LANE_PROGRESS_MS);
  // The lane lives no longer than the link it was granted beside: a link this side found dead (the
  // agent closes its lanes when it finds it so) ends it here too, and the next try resumes.
  const endWithLink = () => relay.close(Buffer.from(JSON.stringify({ code: 'closed', message: 'link closed' })));
  const linkGone = mux.onClose(endWithLink);
  // onClose does not fire for a link that closed while the lane was being opened.
  if (mux.closed) endWithLink();
  let end: Awaited<typeof relay.ended>;
  try {
    end = await relay.ended;
    look();
  } finally {
    clearInterval(ticker);
    linkGone.dispose();
  }
  const received = fstatSync(partialFd).size;
  if (end.how === 'error' && end.message.startsWith('too_big: the peer sent more than')) throw overrun(artifact, jobId);
  if (end.how !== 'eof') {
    const why = end.how === 'error' ? end.message : end.how === 'closed' ? end.reason.toString('utf8') : end.how;
    throw new HangarError('E_UNAVAILABLE', `the lane broke while fetching ${artifact.path} (${why})`);
  }
  // The digest covers the `have` bytes read back and every byte the relay wrote after them: the
  // file holds exactly those when its size is their sum (nothing else appended meanwhile).
  if (end.sha256 === undefined || received !== have + end.bytesIn) {
    throw new HangarError(
      'E_PROTOCOL',
      `artifact ${artifact.path} arrived damaged: the file has ${received} bytes, ${have} from before and ${end.bytesIn} from the lane` +
        `${end.sha256 === undefined ? ' (and no sha256 from the relay)' : ''}; download it again with: hangar artifacts ${jobId}`,
    );
  }
  checkDigest(end.sha256, received, artifact, jobId);
  return true;
}
