/**
 * Output bytes addressed by absolute offset, from the last acked offset to the newest byte.
 * Nothing un-acked is ever dropped here: the attachment bounds growth by pausing its pty, so a
 * client that resumes within the window gets exactly the bytes it missed, none lost or doubled.
 * Acked bytes are freed at once: the client has them.
 */
export class ReplayBuffer {
  private chunks: Uint8Array[] = [];
  /** Absolute offset of chunks[0][0]. */
  private start = 0;
  private end = 0;

  get producedOffset(): number {
    return this.end;
  }

  /** Offset of the oldest byte still held (== ackedOffset). */
  get heldFrom(): number {
    return this.start;
  }

  get heldBytes(): number {
    return this.end - this.start;
  }

  /** Appends a chunk; returns the absolute offset of its first byte. */
  append(chunk: Uint8Array): number {
    const offset = this.end;
    if (chunk.length === 0) return offset;
    this.chunks.push(chunk);
    this.end += chunk.length;
    return offset;
  }

  /** Frees everything before `offset` (clamped to what was produced; going backwards is a no-op). */
  release(offset: number): void {
    const target = Math.min(offset, this.end);
    while (this.start < target) {
      const first = this.chunks[0]!;
      const drop = target - this.start;
      if (drop >= first.length) {
        this.chunks.shift();
        this.start += first.length;
      } else {
        this.chunks[0] = first.subarray(drop);
        this.start += drop;
      }
    }
  }

  /** Bytes [offset, producedOffset) if all are still held, else undefined. */
  readFrom(offset: number): Uint8Array | undefined {
    if (!Number.isInteger(offset) || offset < this.start || offset > this.end) return undefined;
    const out = new Uint8Array(this.end - offset);
    let position = this.start;
    let written = 0;
    for (const chunk of this.chunks) {
      const chunkEnd = position + chunk.length;
      if (chunkEnd > offset) {
        const from = Math.max(0, offset - position);
        out.set(chunk.subarray(from), written);
        written += chunk.length - from;
      }
      position = chunkEnd;
    }
    return out;
  }
}
