import type { FileHandle } from 'node:fs/promises';

/** Pieces in one writev at most (Linux's IOV_MAX is 1024). */
const MAX_PIECES = 1024;

/**
 * Appends the pieces of a bulk stream to a file in few, big writes: the pieces a turn of the event
 * loop brings (a TLS read hands over 16 KiB at a time) and those that arrive while a write is under
 * way leave together in one writev, as views (no copy). One write at a time, so the file's bytes
 * stay in order; `onWritten(end)` says the file holds every byte before `end` (the caller acks up
 * to there). A write stream per piece costs a thread-pool round trip, a callback and a stream
 * bookkeeping step for every 16 KiB.
 */
export class BatchedFileWriter {
  private pending: Uint8Array[] = [];
  private pendingEnd = 0;
  private writing = false;
  private scheduled = false;
  private failure: Error | undefined;
  private idle: (() => void)[] = [];

  constructor(
    private readonly file: FileHandle,
    private readonly onWritten: (end: number) => void,
  ) {}

  /** Queues `data`, whose last byte is just before stream offset `end`. */
  push(data: Uint8Array, end: number): void {
    if (this.failure) return;
    this.pending.push(data);
    this.pendingEnd = end;
    if (this.writing || this.scheduled) return;
    // After this turn's reads: they all join this write.
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** Resolves once everything pushed so far is in the file; rejects with the first write error. */
  async drained(): Promise<void> {
    while (this.writing || this.scheduled || this.pending.length > 0) {
      if (this.failure) break;
      if (!this.writing && !this.scheduled) {
        await this.flush();
        continue;
      }
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  private async flush(): Promise<void> {
    if (this.writing || this.failure) return;
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_PIECES);
        let after = 0;
        for (const piece of this.pending) after += piece.length;
        const end = this.pendingEnd - after;
        await writeAll(this.file, batch);
        this.onWritten(end);
      }
    } catch (error) {
      this.failure = error as Error;
      this.pending = [];
    } finally {
      this.writing = false;
      for (const wake of this.idle.splice(0)) wake();
    }
  }
}

/** One writev, and more for what a short write left (rare for a regular file, not impossible). */
async function writeAll(file: FileHandle, pieces: Uint8Array[]): Promise<void> {
  let left = pieces;
  while (left.length > 0) {
    const { bytesWritten } = await file.writev(left);
    if (bytesWritten === 0) throw new Error('the file took no bytes (disk full?)');
    let skip = bytesWritten;
    let index = 0;
    while (index < left.length && skip >= left[index]!.length) skip -= left[index++]!.length;
    left = left.slice(index);
    if (left.length > 0 && skip > 0) left[0] = left[0]!.subarray(skip);
  }
}
