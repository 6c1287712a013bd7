import { LOG_BLOCK, type LogBlock } from '@hangar/shared';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BlockQueue, DELIVER_BYTES, MAX_INFLATED_AHEAD } from '../../src/jobs/log-blocks.js';

const MB = 1024 * 1024;

/** A deflated block of `size` bytes of `fill`, ending at stream offset `end`. */
function deflated(size: number, fill: number, end: number): LogBlock {
  const body = deflateRawSync(Buffer.alloc(size, fill), { level: 1 });
  return { kind: LOG_BLOCK.deflate, logBytes: size, body, end };
}

interface Delivered {
  data: Uint8Array;
  end: number | undefined;
  consumed: () => void;
}

describe('inflated log blocks to a sink', () => {
  it('a 4 MiB block goes in 1 MiB pieces, its end with the last, and a consumed piece lets the next block in', () => {
    const got: Delivered[] = [];
    const queue = new BlockQueue(
      (data, end, consumed) => got.push({ data, end, consumed }),
      (error) => {
        throw error;
      },
    );
    queue.start();
    queue.push(deflated(4 * MB, 1, 1000));
    queue.push(deflated(2 * MB + 5, 2, 2000));
    expect(got.map((piece) => piece.data.length)).toEqual([MB, MB, MB, MB]);
    expect(got.map((piece) => piece.end)).toEqual([undefined, undefined, undefined, 1000]);
    expect(got.every((piece) => piece.data.every((byte) => byte === 1))).toBe(true);
    // Nothing consumed: the next block waits (4 MiB inflated is MAX_INFLATED_AHEAD).
    expect(MAX_INFLATED_AHEAD).toBe(4 * MB);
    // One piece consumed: the sink is below the bound again, so the next block comes now.
    got[0]!.consumed();
    expect(got.slice(4).map((piece) => [piece.data.length, piece.end])).toEqual([
      [DELIVER_BYTES, undefined],
      [DELIVER_BYTES, undefined],
      [5, 2000],
    ]);
    expect(got.slice(4).every((piece) => piece.data.every((byte) => byte === 2))).toBe(true);
  });

  it('cleared while a block is delivered, the rest of it is not', () => {
    const got: Delivered[] = [];
    const queue: BlockQueue = new BlockQueue(
      (data, end, consumed) => {
        got.push({ data, end, consumed });
        if (got.length === 2) queue.clear();
        consumed();
      },
      (error) => {
        throw error;
      },
    );
    queue.push(deflated(4 * MB, 3, 1000));
    queue.push(deflated(MB, 4, 2000));
    queue.start();
    expect(got.map((piece) => [piece.data.length, piece.end])).toEqual([
      [MB, undefined],
      [MB, undefined],
    ]);
  });
});
