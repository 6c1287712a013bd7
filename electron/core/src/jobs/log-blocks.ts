import { HangarError, LOG_BLOCK, type LogBlock } from '@hangar/shared';
import { inflateRawSync } from 'node:zlib';

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
        let data: Uint8Array;
        try {
          data = decodeLogBlock(block);
        } catch (error) {
          this.blocks.length = 0;
          this.fail(error);
          break;
        }
        const generation = this.cleared;
        for (let at = 0; at < data.length && this.cleared === generation; at += DELIVER_BYTES) {
          const piece = data.subarray(at, at + DELIVER_BYTES);
          this.ahead += piece.length;
          let done = false;
          this.deliver(piece, at + piece.length === data.length ? block.end : undefined, () => {
            if (done) return;
            done = true;
            this.ahead -= piece.length;
            this.pump();
          });
        }
      }
    } finally {
      this.pumping = false;
    }
    if (this.blocks.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
