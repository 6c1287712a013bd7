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
  /** For each write: whether the socket was corked then (the write waits for the uncork). */
  writtenCorked: boolean[] = [];
  corks = 0;
  corkDepth = 0;
  ended = false;
  destroyed = false;
  writableLength = 0;
  private readonly listeners = new Map<string, ((chunk: Uint8Array & Error) => void)[]>();
  write(data: Uint8Array): boolean {
    // The transport hands over its buffers; a copy shows that it does not touch them after.
    this.written.push(data.slice());
    this.writtenCorked.push(this.corkDepth > 0);
    return true;
  }
  cork(): void {
    this.corks++;
    this.corkDepth++;
  }
  uncork(): void {
    this.corkDepth--;
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
        // One turn's frames share one cork (one write to the network).
        expect(sender.corks).toBe(1);
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

  it('writes a small frame after a quiet spell at once and corks the rest of the turn behind it', () => {
    const socket = new FakeSocket();
    const flushes: (() => void)[] = [];
    const transport = wrapByteStream(socket, { later: (flush) => flushes.push(flush) });
    const keystroke = encodeFrame({ type: 'data', stream: 1, offset: 0, payload: Uint8Array.of(0x61) });
    transport.sendParts!(keystroke.subarray(0, DATA_HEAD_BYTES), keystroke.subarray(DATA_HEAD_BYTES));
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 1 }));
    expect(socket.writtenCorked).toEqual([false, true]);
    flushes.splice(0).forEach((flush) => flush());
    expect(socket.corkDepth).toBe(0);

    // Quiet again: the next one goes at once too. A big frame never does (it is two writes).
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 2 }));
    expect(socket.writtenCorked.at(-1)).toBe(false);
    flushes.splice(0).forEach((flush) => flush());
    const big = encodeFrame({ type: 'data', stream: 1, offset: 1, payload: new Uint8Array(5000) });
    transport.sendParts!(big.subarray(0, DATA_HEAD_BYTES), big.subarray(DATA_HEAD_BYTES));
    expect(socket.writtenCorked.slice(-2)).toEqual([true, true]);
    flushes.splice(0).forEach((flush) => flush());

    // While earlier bytes still wait in the socket (a flood), even a small frame is corked.
    socket.writableLength = 70_000;
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 3 }));
    expect(socket.writtenCorked.at(-1)).toBe(true);
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
