import { describe, expect, it } from 'vitest';
import { encodeLogBlockHeader, LOG_BLOCK, LogBlockReader, MAX_LOG_BLOCK_BYTES } from '@hangar/shared';

const block = (kind: 0 | 1, logBytes: number, body: number[]) =>
  Uint8Array.from([...encodeLogBlockHeader(kind, logBytes, body.length), ...body]);

describe('log blocks', () => {
  it('reads the same blocks however the bytes are split, each with the stream offset after it', () => {
    const wire = Uint8Array.from([...block(LOG_BLOCK.raw, 3, [1, 2, 3]), ...block(LOG_BLOCK.deflate, 9, [7, 7])]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const reader = new LogBlockReader();
      const blocks = [...reader.push(wire.subarray(0, cut)), ...reader.push(wire.subarray(cut))];
      expect(blocks.map((b) => [b.kind, b.logBytes, [...b.body], b.end])).toEqual([
        [LOG_BLOCK.raw, 3, [1, 2, 3], 12],
        [LOG_BLOCK.deflate, 9, [7, 7], 23],
      ]);
      expect(reader.pending).toBe(0);
    }
    // One byte at a time: nothing before a block is whole.
    const reader = new LogBlockReader();
    const counts = [...wire].map((byte) => reader.push(Uint8Array.of(byte)).length);
    expect(counts.indexOf(1)).toBe(11);
    expect(counts.lastIndexOf(1)).toBe(22);
  });

  it('with rawPieces, hands a raw block on as its bytes arrive, each piece with the stream offset after it', () => {
    const body = Array.from({ length: 40 }, (_, i) => i);
    const wire = Uint8Array.from([...block(LOG_BLOCK.raw, 40, body), ...block(LOG_BLOCK.deflate, 9, [7, 7])]);
    for (const size of [1, 3, 9, 10, 17, 100]) {
      const reader = new LogBlockReader({ rawPieces: true });
      const blocks = [];
      for (let at = 0; at < wire.length; at += size) {
        blocks.push(...reader.push(wire.subarray(at, at + size)));
        // Inside the raw block, nothing waits: every byte that came is out.
        if (at + size > 9 && at + size < 49) expect(reader.pending).toBe(49 - (at + size));
      }
      const raw = blocks.filter((b) => b.kind === LOG_BLOCK.raw);
      expect(raw.flatMap((b) => [...b.body])).toEqual(body);
      for (const b of raw) expect(b.logBytes).toBe(b.body.length);
      expect(raw.at(-1)!.end).toBe(49);
      expect(raw.map((b) => b.end)).toEqual([...raw.map((b) => b.end)].sort((x, y) => x - y));
      expect(blocks.at(-1)).toMatchObject({ kind: LOG_BLOCK.deflate, logBytes: 9, end: 60 });
      expect(reader.pending).toBe(0);
    }
  });

  it('refuses a bad header as soon as it is whole, before waiting for a body', () => {
    const refuse = (bytes: Uint8Array) => expect(() => new LogBlockReader().push(bytes)).toThrow(/compressed log/);
    refuse(encodeLogBlockHeader(2 as 0, 1, 1));
    refuse(encodeLogBlockHeader(LOG_BLOCK.raw, 0, 0));
    refuse(encodeLogBlockHeader(LOG_BLOCK.raw, 5, 4));
    refuse(encodeLogBlockHeader(LOG_BLOCK.raw, MAX_LOG_BLOCK_BYTES + 1, MAX_LOG_BLOCK_BYTES + 1));
    refuse(encodeLogBlockHeader(LOG_BLOCK.deflate, 10, MAX_LOG_BLOCK_BYTES + 1));
  });
});
