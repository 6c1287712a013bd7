/** Where read buffers come from and go back to (ReadBufferPool). */
export interface ReadBuffers {
  take(): Uint8Array;
  give(buffer: Uint8Array): void;
}

/**
 * One read's buffer, lent to whoever gets views of its bytes while the read is handed on. It goes
 * back to its pool once the read has been handed on and every hold() is released, unless someone
 * kept it: a consumer that does not say when it is done with the bytes (keep()) leaves the buffer
 * to the collector, so a buffer is never read into again while a view of it may be in use.
 */
export class ReadLease {
  /** The read being handed on counts as one hold. */
  private holds = 1;
  private kept = false;

  constructor(
    private readonly buffer: Uint8Array,
    private readonly pool: ReadBuffers,
  ) {}

  /** The bytes are needed after the call that got them returns; the result says when they are not. */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release();
    };
  }

  /** The bytes may be needed for as long as anyone likes: the buffer is never used again. */
  keep(): void {
    this.kept = true;
  }

  /** @internal The read has been handed on (LeasedReads). */
  release(): void {
    if (--this.holds === 0 && !this.kept) this.pool.give(this.buffer);
  }
}

/**
 * A socket's reads into pooled buffers, each handed on with its lease: pass `onread` to Node's
 * tls.connect (each read lands in a buffer from `buffer()`, and `callback` gets it), then this to
 * the transport. Node's TLS otherwise hands every read (at most one 16 KiB record) to JavaScript
 * in a fresh buffer, so a download through the link allocates its whole size in buffers. They die
 * young, but V8 (11.3, Node 20) counts the external memory allocated since its last mark-compact
 * against the old generation's limit, checked after each scavenge, before the dead buffers are
 * swept: with 16 MiB semi-spaces the young buffers reach 32 MiB between scavenges, and a core
 * receiving a preview download started a full mark-compact every 20–45 MB (pauses and marking
 * steps up to 30–50 ms on a loaded machine, which a keystroke's echo waited behind).
 */
/**
 * Smaller reads (a keystroke's echo, a control message) are copied out and their buffer goes back
 * at once: a consumer that keeps them (a terminal's output) would otherwise keep a whole buffer.
 */
const LEASE_READS_FROM = 4 * 1024;

export class LeasedReads {
  private deliver: ((chunk: Uint8Array, lease: ReadLease | undefined) => void) | undefined;
  private early: Uint8Array[] = [];

  constructor(private readonly pool: ReadBuffers & { readonly size: number }) {}

  /** The pool reads go into (the transport puts frames split across reads together in its buffers). */
  get buffers(): ReadBuffers & { readonly size: number } {
    return this.pool;
  }

  readonly onread = {
    buffer: (): Uint8Array => this.pool.take(),
    callback: (length: number, buffer: Uint8Array): boolean => {
      if (this.deliver === undefined) {
        // Before the transport takes the reads: kept (copied) for it.
        this.early.push(buffer.slice(0, length));
        this.pool.give(buffer);
        return true;
      }
      if (length < LEASE_READS_FROM) {
        // As Node would hand it over: in a buffer of its size, whoever keeps it.
        const chunk = buffer.slice(0, length);
        this.pool.give(buffer);
        this.deliver(chunk, undefined);
        return true;
      }
      const lease = new ReadLease(buffer, this.pool);
      try {
        this.deliver(buffer.subarray(0, length), lease);
      } finally {
        lease.release();
      }
      return true;
    },
  };

  /**
   * Reads go to `deliver` from now on, what came before first (in buffers of their own, so with
   * no lease). `deliver` may use the chunk's bytes only while it runs, unless it holds or keeps
   * the lease.
   */
  attach(deliver: (chunk: Uint8Array, lease: ReadLease | undefined) => void): void {
    this.deliver = deliver;
    for (const chunk of this.early.splice(0)) deliver(chunk, undefined);
  }
}
