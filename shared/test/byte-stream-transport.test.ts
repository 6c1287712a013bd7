import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DATA_HEAD_BYTES,
  decodeFrame,
  encodeFrame,
  encodeLengthPrefixed,
  FrameReader,
  HangarError,
  MAX_FRAME_BYTES,
  wrapByteStream,
  type CloseReason,
  type DuplexByteSocket,
} from '@hangar/shared';

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Cuts `bytes` at the given points (any order, duplicates allowed): reads of any size. */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const point of [...at, bytes.length]) {
    if (point > from) pieces.push(bytes.subarray(from, point));
    from = point;
  }
  return pieces;
}

/** A socket that records what the transport wrote and lets the test play reads into it. */
class FakeSocket implements DuplexByteSocket {
  written: Uint8Array[] = [];
  /** What write() was given, as given. */
  given: Uint8Array[] = [];
  /** Write callbacks not run yet: the test finishes writes when it likes. */
  pending: (() => void)[] = [];
  ended = false;
  destroyed = false;
  writableLength = 0;
  private readonly listeners = new Map<string, ((chunk: Uint8Array & Error) => void)[]>();
  write(data: Uint8Array, done: () => void): boolean {
    // The transport hands over its buffers; a copy shows that it does not touch them after.
    this.written.push(data.slice());
    this.given.push(data);
    this.writableLength += data.length;
    this.pending.push(() => {
      this.writableLength -= data.length;
      done();
    });
    return true;
  }
  /** Finishes writes, including those they lead to, until none is under way. */
  finishWrites(): void {
    while (this.pending.length > 0) this.pending.shift()!();
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'drain' | 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: string, listener: (chunk: Uint8Array & Error) => void): unknown {
    // Only 'data' is ever emitted here; the others are kept to satisfy the interface.
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
    return this;
  }
  emit(event: 'data', chunk: Uint8Array): void {
    for (const listener of this.listeners.get(event) ?? []) listener(chunk as Uint8Array & Error);
  }
}

const frameBytes = fc.uint8Array({ minLength: 1, maxLength: 3000 });

describe('the raw link framing', () => {
  it('gives back every frame, in order, however the byte stream is split or merged', () => {
    fc.assert(
      fc.property(fc.array(frameBytes, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, points) => {
        const wire = concat(frames.map(encodeLengthPrefixed));
        const reader = new FrameReader();
        const out: Uint8Array[] = [];
        for (const piece of cut(wire, points)) reader.push(piece, (frame) => out.push(frame.slice()));
        expect(out).toEqual(frames);
      }),
    );
  });

  it('refuses a length of 0 or over the frame limit with E_PROTOCOL, wherever the prefix is split', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(0), fc.integer({ min: MAX_FRAME_BYTES + 1, max: 0xffffffff })),
        fc.array(fc.nat(), { maxLength: 4 }),
        (length, points) => {
          const prefix = new Uint8Array(4);
          new DataView(prefix.buffer).setUint32(0, length);
          const reader = new FrameReader();
          let error: unknown;
          try {
            for (const piece of cut(prefix, points)) reader.push(piece, () => undefined);
          } catch (thrown) {
            error = thrown;
          }
          expect(error).toBeInstanceOf(HangarError);
          expect((error as HangarError).code).toBe('E_PROTOCOL');
        },
      ),
    );
  });

  it('carries whole frames and data frames sent as head and payload alike, across any reads', () => {
    const payloads = fc.array(fc.uint8Array({ maxLength: 5000 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(payloads, fc.array(fc.nat(), { maxLength: 30 }), (bodies, points) => {
        const sender = new FakeSocket();
        const flushes: (() => void)[] = [];
        const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
        const expected: Uint8Array[] = [];
        bodies.forEach((payload, i) => {
          const frame = { type: 'data' as const, stream: i + 1, offset: i * 1000, payload };
          expected.push(encodeFrame(frame));
          if (i % 2 === 0) {
            near.send(encodeFrame(frame));
          } else {
            const whole = encodeFrame(frame);
            near.sendParts!(whole.subarray(0, DATA_HEAD_BYTES), whole.subarray(DATA_HEAD_BYTES));
          }
        });
        // One turn's frames leave after the turn, one write at a time.
        expect(flushes).toHaveLength(1);
        expect(sender.written).toHaveLength(0);
        flushes[0]!();
        sender.finishWrites();
        expect(flushes).toHaveLength(1);

        const receiver = new FakeSocket();
        const far = wrapByteStream(receiver, { later: (flush) => flush() });
        const got: Uint8Array[] = [];
        far.onFrame((frame) => got.push(frame.slice()));
        for (const piece of cut(concat(sender.written), points)) receiver.emit('data', piece);
        expect(got).toEqual(expected);
        expect(got.map((f) => decodeFrame(f))).toEqual(expected.map((f) => decodeFrame(f)));
      }),
    );
  });

  it('joins a turn of small frames into one write and hands a bulk payload to the socket alone, uncopied', () => {
    const sender = new FakeSocket();
    const flushes: (() => void)[] = [];
    const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
    const bulk = new Uint8Array(256 * 1024).fill(7);
    const small = () => encodeFrame({ type: 'ack', stream: 3, offset: 10 });
    near.send(small());
    near.send(small());
    const whole = encodeFrame({ type: 'data', stream: 5, offset: 0, payload: bulk });
    near.sendParts!(whole.subarray(0, DATA_HEAD_BYTES), bulk);
    near.send(small());
    expect(near.bufferedAmount).toBeGreaterThanOrEqual(bulk.length);
    flushes[0]!();
    // One write at a time: the socket never holds two, so Node never joins (copies) them.
    expect(sender.given).toHaveLength(1);
    sender.finishWrites();
    expect(sender.given).toHaveLength(3);
    expect(sender.given[1]).toBe(bulk);
    expect(sender.given[0]!.length).toBe(2 * (4 + small().length) + 4 + DATA_HEAD_BYTES);
    expect(near.bufferedAmount).toBe(0);
  });

  it('closes the link with E_PROTOCOL when the peer breaks the framing', async () => {
    const socket = new FakeSocket();
    const transport = wrapByteStream(socket, { later: (flush) => flush() });
    const closed = new Promise<CloseReason>((resolve) => transport.onClose(resolve));
    socket.emit('data', new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    expect((await closed).code).toBe('E_PROTOCOL');
    expect(socket.destroyed).toBe(true);
  });
});
