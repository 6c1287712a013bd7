import { HangarError, LOG_BLOCK, MAX_LOG_BLOCK_BYTES, type LogBlock } from '@hangar/shared';
import { constants, createInflateRaw, inflateRawSync } from 'node:zlib';

/**
 * The log bytes of one block, capped at the length the header declares, so a block cannot
 * expand into more memory than it announced. Inflating is synchronous: ~0.5 ms per MiB of log,
 * and measured in the jobs bench it took 30-40% less CPU than zlib's thread-pool version, whose
 * per-call setup and result handling on the event loop cost more than the inflating itself.
 */
export function decodeLogBlock(block: LogBlock): Uint8Array {
  if (block.kind === LOG_BLOCK.raw) return block.body;
  let bytes: Uint8Array;
  try {
    // One output chunk of the announced size, not zlib's 16 KiB pieces joined by a copy.
    bytes = inflateRawSync(block.body, { maxOutputLength: block.logBytes, chunkSize: Math.max(64, block.logBytes) });
  } catch (error) {
    throw new HangarError('E_PROTOCOL', `compressed log: a block does not inflate: ${(error as Error).message}`);
  }
  if (bytes.length !== block.logBytes) {
    throw new HangarError(
      'E_PROTOCOL',
      `compressed log: a block inflated to ${bytes.length} bytes, its header said ${block.logBytes}`,
    );
  }
  return bytes;
}

/**
 * Inflated log bytes handed to a sink and not yet consumed, at most (beyond one block). The
 * stream's credit window bounds the compressed bytes we hold; without this bound a slow reader
 * of a log that compresses 170× could make us hold hundreds of MB of inflated blocks.
 */
export const MAX_INFLATED_AHEAD = 4 * 1024 * 1024;
/**
 * A block's log goes to the sink in pieces of at most this (agents send up to 4 MiB per block
 * while a log compresses): a sink that consumes as it goes (a UI acking what it rendered) lets
 * the next block through after a piece, not only after the whole block.
 */
export const DELIVER_BYTES = 1024 * 1024;

/** A piece of a block's log; `release` gives its buffer back to the pool once the piece is consumed. */
interface Piece {
  data: Uint8Array;
  release?: () => void;
}

/** Blocks of at least this many log bytes inflate into pooled buffers; smaller ones into their own. */
const POOLED_BLOCK_BYTES = 64 * 1024;
/** Pooled buffers kept: as many as can be out at once (MAX_INFLATED_AHEAD and one block more). */
const POOL_BUFFERS = (MAX_INFLATED_AHEAD + MAX_LOG_BLOCK_BYTES) / DELIVER_BYTES;

/** What zlib's own synchronous calls drive: inflating into a buffer the caller gives. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  onerror: (message: string) => void;
}

function protocolError(message: string): HangarError {
  return new HangarError('E_PROTOCOL', `compressed log: ${message}`);
}

function split(data: Uint8Array): Piece[] {
  const pieces: Piece[] = [];
  for (let at = 0; at < data.length; at += DELIVER_BYTES) pieces.push({ data: data.subarray(at, at + DELIVER_BYTES) });
  return pieces;
}

/**
 * Inflates blocks into pieces of at most DELIVER_BYTES, with one zlib stream (reset between
 * blocks) and, for big blocks, output buffers that come back once their piece is consumed: a
 * fresh 4 MiB buffer per block (inflateRawSync) is external memory that V8 collects by marking
 * the heap, and new pages to fault in. A piece never consumed (lent to a stream that closed)
 * never comes back, so no buffer is reused while someone may still read it.
 *
 * Node has no public call that inflates into a caller's buffer, so this drives the handle of a
 * zlib stream (`_handle.writeSync`, as zlib's own synchronous calls do); where that is missing,
 * and once closed, each block inflates into a fresh buffer as before (decodeLogBlock).
 */
class BlockInflater {
  private zlib: { stream: { close(): void }; handle: ZlibHandle; state: Uint32Array } | undefined;
  private unsupported = false;
  private closed = false;
  private failure: string | undefined;
  private readonly pool: Buffer[] = [];
  private readonly scratch = Buffer.allocUnsafe(1);

  /** A deflated block's log bytes; throws E_PROTOCOL unless it inflates to exactly what its header says. */
  inflate(block: LogBlock): Piece[] {
    const zlib = this.open();
    if (!zlib) return split(decodeLogBlock(block));
    const body = block.body;
    let inOff = 0;
    let inLeft = body.length;
    // Inflates into out[0, size); returns the bytes it wrote.
    const run = (out: Uint8Array, size: number): number => {
      zlib.handle.writeSync(constants.Z_FINISH, body, inOff, inLeft, out, 0, size);
      if (this.failure !== undefined) throw protocolError(`a block does not inflate: ${this.failure}`);
      inOff += inLeft - zlib.state[1]!;
      inLeft = zlib.state[1]!;
      return size - zlib.state[0]!;
    };
    const pooled = block.logBytes >= POOLED_BLOCK_BYTES;
    const pieces: Piece[] = [];
    let inflated = 0;
    try {
      while (inflated < block.logBytes) {
        const size = Math.min(DELIVER_BYTES, block.logBytes - inflated);
        const buffer = pooled ? this.take() : Buffer.allocUnsafe(size);
        pieces.push(pooled ? { data: buffer, release: () => this.give(buffer) } : { data: buffer });
        const wrote = run(buffer, size);
        pieces[pieces.length - 1]!.data = buffer.subarray(0, wrote);
        inflated += wrote;
        if (wrote < size) break;
      }
      if (inflated === block.logBytes && run(this.scratch, 1) > 0) {
        throw protocolError(`a block does not inflate: it holds more than the ${block.logBytes} bytes its header said`);
      }
      if (inflated !== block.logBytes) {
        throw protocolError(`a block inflated to ${inflated} bytes, its header said ${block.logBytes}`);
      }
      zlib.handle.reset();
    } catch (error) {
      for (const piece of pieces) piece.release?.();
      this.drop();
      throw error;
    }
    return pieces;
  }

  /** Lets the zlib stream go (later blocks, if any, inflate as decodeLogBlock does). */
  close(): void {
    this.closed = true;
    this.drop();
    this.pool.length = 0;
  }

  private open(): BlockInflater['zlib'] {
    if (this.zlib || this.unsupported || this.closed) return this.zlib;
    const stream = createInflateRaw();
    const internals = stream as unknown as { _handle?: Partial<ZlibHandle>; _writeState?: unknown };
    const handle = internals._handle;
    const state = internals._writeState;
    if (
      typeof handle?.writeSync !== 'function' ||
      typeof handle.reset !== 'function' ||
      !(state instanceof Uint32Array)
    ) {
      this.unsupported = true;
      stream.close();
      return undefined;
    }
    this.failure = undefined;
    // zlib reports an error by calling this back inside writeSync.
    handle.onerror = (message: string) => (this.failure = message);
    this.zlib = { stream, handle: handle as ZlibHandle, state };
    return this.zlib;
  }

  private drop(): void {
    this.zlib?.stream.close();
    this.zlib = undefined;
  }

  private take(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(DELIVER_BYTES);
  }

  private give(buffer: Buffer): void {
    if (!this.closed && this.pool.length < POOL_BUFFERS) this.pool.push(buffer);
  }
}

/**
 * Gives blocks' log bytes to `deliver` in order, in pieces of at most DELIVER_BYTES, inflating a
 * block only while less than MAX_INFLATED_AHEAD of inflated bytes wait to be consumed;
 * `consumed` (once per piece) lets the next ones through. `end` is the block's stream offset,
 * given with its last piece only (ack it once that piece is consumed), undefined before.
 */
export class BlockQueue {
  private readonly blocks: LogBlock[] = [];
  private ahead = 0;
  private open = false;
  private pumping = false;
  private idleWaiters: (() => void)[] = [];
  /** Counts clear() calls: the rest of a block being delivered is dropped too. */
  private cleared = 0;
  private readonly inflater = new BlockInflater();

  constructor(
    private readonly deliver: (data: Uint8Array, end: number | undefined, consumed: () => void) => void,
    private readonly fail: (error: unknown) => void,
    private readonly limit = MAX_INFLATED_AHEAD,
  ) {}

  push(block: LogBlock): void {
    this.blocks.push(block);
    this.pump();
  }

  /** Blocks are held until this (the answer that names the attempt has arrived). */
  start(): void {
    this.open = true;
    this.pump();
  }

  /** Drops what is not delivered yet (the follow failed or stopped). */
  clear(): void {
    this.blocks.length = 0;
    this.cleared++;
    this.pump();
  }

  /**
   * The follow is over: lets the zlib stream go. Pieces still out may be consumed later; blocks
   * still queued (if any) would inflate each into a fresh buffer.
   */
  close(): void {
    this.inflater.close();
  }

  /** Resolves once every block pushed so far has been delivered (not necessarily consumed). */
  delivered(): Promise<void> {
    if (this.blocks.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.open && this.blocks.length > 0 && this.ahead < this.limit) {
        const block = this.blocks.shift()!;
        const generation = this.cleared;
        if (block.kind === LOG_BLOCK.raw) {
          // As it came (a piece of a link read, mostly): nothing to inflate or give back.
          const body = block.body;
          for (let at = 0; at < body.length && this.cleared === generation; at += DELIVER_BYTES) {
            const data = body.subarray(at, at + DELIVER_BYTES);
            this.hand(data, at + data.length === body.length ? block.end : undefined);
          }
          continue;
        }
        let pieces: Piece[];
        try {
          pieces = this.inflater.inflate(block);
        } catch (error) {
          this.blocks.length = 0;
          this.fail(error);
          break;
        }
        pieces.forEach(({ data, release }, index) => {
          // Cleared: the rest of the block is not delivered, and its buffers go back at once.
          if (this.cleared !== generation) return release?.();
          this.hand(data, index === pieces.length - 1 ? block.end : undefined, release);
        });
      }
    } finally {
      this.pumping = false;
    }
    if (this.blocks.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Delivers a piece; once consumed, `release` gives its buffer back and the next blocks may come. */
  private hand(data: Uint8Array, end: number | undefined, release?: () => void): void {
    this.ahead += data.length;
    let done = false;
    this.deliver(data, end, () => {
      if (done) return;
      done = true;
      this.ahead -= data.length;
      release?.();
      this.pump();
    });
  }
}
