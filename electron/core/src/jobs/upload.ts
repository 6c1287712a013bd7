import { BULK_FRAME_BYTES, BULK_STREAM_WINDOW, HangarError, type CloseReason, type LinkStream } from '@hangar/shared';
import { createReadStream } from 'node:fs';
import { retryOnNewLink, streamError, type JobLink } from './job-link.js';
import type { PackedWorkspace } from './pack.js';

export interface UploadProgress {
  /** Bytes the agent has acknowledged. */
  done: number;
  total: number;
}

export interface UploadResult {
  /** The host already had this content: nothing was sent. */
  skipped: boolean;
  size: number;
}

/** A link that drops mid-upload costs a restart from byte 0 (the agent keeps no partial uploads). */
const UPLOAD_TRIES = 3;
const READ_CHUNK = 256 * 1024;

/**
 * Sends a packed workspace unless the host already has its hash: `workspace.has`, then
 * `workspace.upload` and the bytes on a stream (written only after the answer, paced by the
 * stream's credit window), then `workspace.commit`.
 */
export async function uploadWorkspace(
  connection: JobLink,
  packed: PackedWorkspace,
  onProgress?: (progress: UploadProgress) => void,
): Promise<UploadResult> {
  const retained = connection.retain();
  try {
    return await retryOnNewLink(connection, UPLOAD_TRIES, async () => {
      const { present } = await connection.call('workspace.has', { hash: packed.hash });
      if (present) return { skipped: true, size: packed.size };
      await sendOnce(connection, packed, onProgress);
      const committed = await connection.call('workspace.commit', { hash: packed.hash });
      return { skipped: false, size: committed.size };
    });
  } finally {
    retained.dispose();
  }
}

async function sendOnce(
  connection: JobLink,
  packed: PackedWorkspace,
  onProgress?: (progress: UploadProgress) => void,
): Promise<void> {
  const mux = await connection.link();
  const stream = mux.openStream({ window: BULK_STREAM_WINDOW, maxFrameBytes: BULK_FRAME_BYTES });
  const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
  try {
    await connection.call('workspace.upload', { hash: packed.hash, size: packed.size, stream_id: stream.id });
  } catch (error) {
    stream.close({ code: 'cancelled', message: 'upload refused' }, { flush: false });
    throw error;
  }
  const total = packed.size;
  onProgress?.({ done: 0, total });
  const acks = stream.onAck((done) => onProgress?.({ done, total }));
  try {
    await writeFile(stream, packed.path, closed);
    // Close only once every byte is acknowledged: progress is then true, and a close means "complete".
    await fullyAcked(stream, total, closed);
  } finally {
    void acks.dispose();
  }
  if (stream.closed) {
    const reason = await closed;
    if (mux.closed) throw new HangarError('E_UNAVAILABLE', `link dropped during upload: ${reason.message}`);
    // The agent ends the stream itself once it has all `size` bytes (its last ack may not come
    // first); a close with an error code is its refusal.
    const complete = reason.code === 'upload_complete' || stream.peerAckedOffset >= total;
    if (!complete || reason.code.startsWith('E_')) throw streamError('workspace upload', reason);
    onProgress?.({ done: total, total });
    return;
  }
  onProgress?.({ done: total, total });
  stream.close({ code: 'upload_end', message: 'workspace sent' });
}

async function writeFile(stream: LinkStream, path: string, closed: Promise<CloseReason>): Promise<void> {
  const file = createReadStream(path, { highWaterMark: READ_CHUNK });
  let streamClosed = false;
  void closed.then(() => {
    streamClosed = true;
  });
  try {
    for await (const chunk of file) {
      if (streamClosed) return;
      // A file stream's chunks are fresh buffers, never reused: handed over, not copied.
      if (!stream.write(chunk as Buffer, { transfer: true })) {
        await new Promise<void>((resolve) => {
          const drain = stream.onDrain(() => {
            void drain.dispose();
            resolve();
          });
          void closed.then(() => resolve());
        });
      }
    }
  } finally {
    file.destroy();
  }
}

function fullyAcked(stream: LinkStream, total: number, closed: Promise<CloseReason>): Promise<void> {
  if (stream.closed || stream.peerAckedOffset >= total) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const acks = stream.onAck((offset) => {
      if (offset < total) return;
      void acks.dispose();
      resolve();
    });
    void closed.then(() => resolve());
  });
}
