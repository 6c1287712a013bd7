import { writeSync } from 'node:fs';
import type { IPty } from 'node-pty';

/** What node-pty's Unix terminal has beyond IPty: its master fd and the stream that reads it. */
interface PtyInternals {
  fd?: unknown;
  _socket?: { destroyed?: unknown };
}

/**
 * Input to a pty's master, written on the spot. node-pty's own write() goes through fs.write on
 * libuv's thread pool: a worker thread woken for every keystroke and the loop woken again for its
 * answer, a few hundred µs at a person's pace on a busy machine (test/bench/terminal). Here a
 * write is one write(2) from the loop; only what the kernel does not take at once (a paste past
 * the tty's buffer: EAGAIN) waits, in order, for the next turn, as node-pty does.
 *
 * The fd is written only while node-pty's reader of it is alive: once it is destroyed the fd is
 * closed, and its number may already name another file. Without node-pty's fd (another platform
 * or version) input goes through node-pty's write().
 */
export class PtyInput {
  private readonly queue: Buffer[] = [];
  private retry: NodeJS.Immediate | undefined;
  private readonly internals: PtyInternals;

  constructor(
    private readonly pty: IPty,
    /** A write failed for another reason than a full buffer: the rest is dropped. */
    private readonly onError: (error: unknown) => void,
  ) {
    this.internals = pty as unknown as PtyInternals;
  }

  private get fd(): number | undefined {
    const { fd, _socket: reader } = this.internals;
    return typeof fd === 'number' && reader?.destroyed === false ? fd : undefined;
  }

  /** Writes now what the kernel takes; the rest is copied (the caller may reuse `bytes`) and waits. */
  write(bytes: Buffer): void {
    if (this.queue.length === 0 && this.fd === undefined) {
      this.pty.write(bytes);
      return;
    }
    if (this.queue.length > 0) {
      this.queue.push(Buffer.from(bytes));
      return;
    }
    this.queue.push(bytes);
    this.flush();
  }

  /** Resolves once everything written so far has reached the pty (or been dropped with it). */
  async flushed(): Promise<void> {
    while (this.queue.length > 0 && this.fd !== undefined) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  dispose(): void {
    if (this.retry) clearImmediate(this.retry);
    this.retry = undefined;
    this.queue.length = 0;
  }

  private flush(): void {
    this.retry = undefined;
    while (this.queue.length > 0) {
      const fd = this.fd;
      if (fd === undefined) {
        this.queue.length = 0; // the pty is gone: nobody will read it
        return;
      }
      const head = this.queue[0]!;
      let written = 0;
      try {
        written = writeSync(fd, head);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') {
          this.queue.length = 0;
          this.onError(error);
          return;
        }
      }
      if (written < head.length) {
        this.queue[0] = Buffer.from(head.subarray(written));
        this.retry = setImmediate(() => this.flush());
        return;
      }
      this.queue.shift();
    }
  }
}
