import { BULK_FRAME_BYTES, WRITE_HEAD_ROOM } from '@hangar/shared';
import type { FileHandle } from 'node:fs/promises';

/**
 * File bytes read for a bulk stream are laid out one frame's worth at a time (BULK_FRAME_BYTES),
 * each behind WRITE_HEAD_ROOM free bytes: written with `headRoom`, each goes out as one frame
 * whose head the link writes in front of it, so head and payload leave as one buffer (one TLS
 * record run and one socket write per frame, no copy). One preadv fills all of them.
 */
const SEGMENT_STRIDE = WRITE_HEAD_ROOM + 16 + BULK_FRAME_BYTES;
/**
 * Where the first segment starts: the frame in front of it (length prefix and data head, 17
 * bytes on the raw link) then starts 16-byte aligned, as a plain read buffer's bytes do, so
 * AES-GCM reads whole aligned blocks (unaligned, the sender's SSL_write took ~10% more).
 */
const FIRST_SEGMENT = WRITE_HEAD_ROOM + 1;

/** Size of a buffer that holds `bytes` of file this way. */
export function framedBufferBytes(bytes: number): number {
  return FIRST_SEGMENT + Math.ceil(bytes / BULK_FRAME_BYTES) * SEGMENT_STRIDE;
}

/**
 * Reads `length` bytes at `position` of `file` into `buffer` (of framedBufferBytes(length) or
 * more) one frame's worth after each head room; returns the filled views, in order (their lengths
 * add up to what was read: less than `length` only at the end of the file), and the same with
 * their head room in front (what LinkStream.write takes with `headRoom`).
 */
export async function readFramed(
  file: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
): Promise<{ bytesRead: number; segments: Buffer[]; withRoom: Buffer[] }> {
  const views: Buffer[] = [];
  for (let at = 0; at < length; at += BULK_FRAME_BYTES) {
    const start = (at / BULK_FRAME_BYTES) * SEGMENT_STRIDE + FIRST_SEGMENT;
    views.push(buffer.subarray(start, start + Math.min(BULK_FRAME_BYTES, length - at)));
  }
  const { bytesRead } =
    views.length === 1 ? await file.read(views[0]!, 0, length, position) : await file.readv(views, position);
  const segments: Buffer[] = [];
  const withRoom: Buffer[] = [];
  let left = bytesRead;
  for (const view of views) {
    if (left <= 0) break;
    const segment = left >= view.length ? view : view.subarray(0, left);
    segments.push(segment);
    const start = segment.byteOffset - buffer.byteOffset;
    withRoom.push(buffer.subarray(start - WRITE_HEAD_ROOM, start + segment.length));
    left -= view.length;
  }
  return { bytesRead, segments, withRoom };
}
