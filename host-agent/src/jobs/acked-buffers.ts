import type { Disposable, LinkStream } from '@hangar/shared';

/**
 * Read buffers for a bulk sender, used again once the peer has acked their bytes (then the link
 * is done with them: they were encrypted and written long before). A fresh 1 MiB buffer per MiB
 * sent costs a page fault per 4 KiB on first touch and makes V8 collect for external memory
 * every few MiB; a stream's window's worth of buffers going round costs neither.
 */
export class AckedBuffers implements Disposable {
  private readonly spare: Buffer[] = [];
  /** Buffers written to the stream, with the stream offset their bytes end at. */
  private readonly lent: { buffer: Buffer; end: number }[] = [];
  private readonly subscription: Disposable;

  constructor(
    private readonly stream: LinkStream,
    readonly size: number,
    /** Spare buffers kept at most (more acked at once are left to the collector). */
    private readonly keep: number,
  ) {
    this.subscription = stream.onAck((offset) => {
      while (this.lent.length > 0 && this.lent[0]!.end <= offset) this.giveBack(this.lent.shift()!.buffer);
    });
  }

  take(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** `buffer`'s bytes were just written to the stream (call right after write). */
  written(buffer: Buffer): void {
    this.lent.push({ buffer, end: this.stream.sentOffset + this.stream.queuedBytes });
  }

  /** `buffer` was not sent (its bytes went another way, or not at all): use it again now. */
  giveBack(buffer: Buffer): void {
    if (this.spare.length < this.keep) this.spare.push(buffer);
  }

  /** A quiet sender keeps no spare memory. */
  trim(): void {
    this.spare.length = 0;
  }

  dispose(): void {
    this.subscription.dispose();
    this.spare.length = 0;
    this.lent.length = 0;
  }
}
