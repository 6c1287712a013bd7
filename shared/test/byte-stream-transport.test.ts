import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  concatBytes,
  DATA_HEAD_BYTES,
  decodeFrame,
  encodeFrame,
  encodeLengthPrefixed,
  FRAME_TYPE,
  FrameReader,
  HangarError,
  Mux,
  MAX_FRAME_BYTES,
  STREAMED_DATA_FRAME_BYTES,
  wrapByteStream,
  type CloseReason,
  type DuplexByteSocket,
} from '@hangar/shared';

/** Byte-for-byte equality without a deep comparison per element (payloads here are ~100 KiB). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
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
  /** Writes whose bytes the transport changed before the socket was done with them. */
  overwritten = 0;
  write(data: Uint8Array, done: () => void): boolean {
    // The transport hands over its buffers; a copy shows that it does not touch them after.
    const copy = data.slice();
    this.written.push(copy);
    this.given.push(data);
    this.writableLength += data.length;
    this.pending.push(() => {
      if (!same(data, copy)) this.overwritten++;
      this.writableLength -= data.length;
      done();
    });
    return true;
  }
  /** Finishes writes, including those they lead to, until none is under way. */
  finishWrites(): void {
    while (this.pending.length > 0) this.pending.shift()!();
  }
  /** Runs the transport's deferred flushes and finishes writes, until neither is left. */
  settle(flushes: (() => void)[]): void {
    while (flushes.length > 0 || this.pending.length > 0) {
      flushes.splice(0).forEach((flush) => flush());
      this.finishWrites();
    }
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
        const wire = concatBytes(frames.map(encodeLengthPrefixed));
        const reader = new FrameReader();
        const out: Uint8Array[] = [];
        for (const piece of cut(wire, points)) reader.push(piece, (frame) => out.push(frame.slice()));
        expect(out).toEqual(frames);
      }),
    );
  });

  it('hands a big data frame on in pieces (views of the reads) that make its payload, however it is split', () => {
    // Big data frames, a big control frame (always whole), small data frames (a part when inside
    // one read, whole when split) and other small frames, in any order.
    const kinds = fc.array(
      fc.oneof(
        fc.record({ big: fc.integer({ min: STREAMED_DATA_FRAME_BYTES - 20, max: 300_000 }), seed: fc.nat(255) }),
        fc.record({ smallData: fc.uint8Array({ maxLength: 3000 }) }),
        fc.record({
          small: fc.uint8Array({ minLength: 1, maxLength: 300 }).filter((bytes) => bytes[0] !== FRAME_TYPE.data),
        }),
        fc.record({ control: fc.integer({ min: 140_000, max: 160_000 }) }),
      ),
      { minLength: 1, maxLength: 5 },
    );
    fc.assert(
      fc.property(kinds, fc.array(fc.nat(), { maxLength: 30 }), (list, points) => {
        const frames = list.map((kind, i) => {
          if ('big' in kind) {
            const payload = new Uint8Array(kind.big).map((_, j) => (j * 7 + kind.seed) & 0xff);
            return encodeFrame({ type: 'data', stream: i + 1, offset: i * 1_000_000, payload });
          }
          if ('smallData' in kind)
            return encodeFrame({ type: 'data', stream: i + 1, offset: i * 1_000_000, payload: kind.smallData });
          if ('control' in kind)
            return encodeFrame({ type: 'control', json: JSON.stringify('x'.repeat(kind.control)) });
          return kind.small;
        });
        const wire = concatBytes(frames.map(encodeLengthPrefixed));
        // Reads of at most 16 KiB, as TLS gives them, cut further at the random points.
        const reads = cut(wire, [...points, ...Array.from({ length: wire.length >> 14 }, (_, k) => (k + 1) << 14)]);
        const reader = new FrameReader();
        const got: { whole?: Uint8Array; stream?: number; offset?: number; parts?: Uint8Array[] }[] = [];
        for (const read of reads) {
          reader.push(
            read,
            (frame) => got.push({ whole: frame.slice() }),
            (stream, offset, payload) => {
              const last = got.at(-1);
              // A piece is a view of the read it came in: nothing was copied.
              expect(payload.buffer).toBe(read.buffer);
              if (last?.stream === stream) {
                expect(offset).toBe(last.offset! + last.parts!.reduce((n, p) => n + p.length, 0));
                last.parts!.push(payload.slice());
              } else got.push({ stream, offset, parts: [payload.slice()] });
            },
          );
        }
        expect(got).toHaveLength(frames.length);
        got.forEach((entry, i) => {
          // Every big data frame spans reads here: it must have come in pieces.
          const data = frames[i]![0] === FRAME_TYPE.data;
          if (data && frames[i]!.length >= STREAMED_DATA_FRAME_BYTES) expect(entry.whole).toBeUndefined();
          if (entry.whole) {
            expect(same(entry.whole, frames[i]!)).toBe(true);
          } else {
            expect(data).toBe(true);
            const frame = decodeFrame(frames[i]!);
            if (frame.type !== 'data') throw new Error('not a data frame');
            expect([entry.stream, entry.offset]).toEqual([frame.stream, frame.offset]);
            expect(same(concatBytes(entry.parts!), frame.payload)).toBe(true);
          }
        });
      }),
      { numRuns: 40 },
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

  it('carries whole frames and data frames sent as head and payload alike, across any reads', async () => {
    const payloads = fc.array(fc.uint8Array({ maxLength: 5000 }), { minLength: 1, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(payloads, fc.array(fc.nat(), { maxLength: 30 }), async (bodies, points) => {
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
        // One turn's frames leave together: once the sending code returns if the first is small,
        // else after the turn.
        await Promise.resolve();
        expect(sender.written.length).toBeLessThanOrEqual(2);
        expect(flushes.length).toBeLessThanOrEqual(1);
        sender.settle(flushes);

        const receiver = new FakeSocket();
        const far = wrapByteStream(receiver, { later: (flush) => flush() });
        const got: Uint8Array[] = [];
        far.onFrame((frame) => got.push(frame.slice()));
        for (const piece of cut(concatBytes(sender.written), points)) receiver.emit('data', piece);
        expect(got).toEqual(expected);
        expect(got.map((f) => decodeFrame(f))).toEqual(expected.map((f) => decodeFrame(f)));
      }),
    );
  });

  it('hands an ack that comes whole in a read to onAck as its numbers, in order with the frames; a split ack and a bad one go to onFrame', () => {
    const frame = fc.oneof(
      fc.record({ type: fc.constant('ack' as const), stream: fc.integer({ min: 1, max: 99 }), offset: fc.nat() }),
      fc.record({
        type: fc.constant('data' as const),
        stream: fc.integer({ min: 1, max: 99 }),
        offset: fc.nat(),
        payload: fc.uint8Array({ minLength: 1, maxLength: 40 }),
      }),
      fc.record({ type: fc.constant('control' as const), json: fc.json() }),
    );
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, points) => {
        // An ack whose offset is past 2^53-1 (not encodable by encodeFrame): built by hand.
        const bad = encodeFrame({ type: 'ack', stream: 1, offset: 0 });
        bad[5] = 0xff;
        const wire = concatBytes([
          ...frames.map((f) => encodeLengthPrefixed(encodeFrame(f))),
          encodeLengthPrefixed(bad),
        ]);
        const pieces = cut(wire, points);
        const socket = new FakeSocket();
        const transport = wrapByteStream(socket, { later: (flush) => flush() });
        const got: string[] = [];
        transport.onFrame((bytes) => {
          if (bytes[0] === FRAME_TYPE.ack && bytes[5] === 0xff) got.push('bad ack');
          else got.push(JSON.stringify(decodeFrame(bytes), (_, v: unknown) => (v instanceof Uint8Array ? [...v] : v)));
        });
        transport.onDataPart!((stream, offset, payload) =>
          got.push(JSON.stringify({ type: 'data', stream, offset, payload: [...payload] })),
        );
        let fast = 0;
        transport.onAck!((stream, offset) => {
          fast++;
          got.push(JSON.stringify({ type: 'ack', stream, offset }));
        });
        for (const piece of pieces) socket.emit('data', piece);
        const expected = frames.map((f) =>
          JSON.stringify(f, (_, v: unknown) => (v instanceof Uint8Array ? [...v] : v)),
        );
        expect(got).toEqual([...expected, 'bad ack']);
        // Every ack inside one read took the short way (all of them when the wire came whole).
        if (pieces.length === 1) expect(fast).toBe(frames.filter((f) => f.type === 'ack').length);
      }),
    );
  });

  it('joins a turn of small frames into one write and hands a bulk payload to the socket alone, uncopied', async () => {
    const sender = new FakeSocket();
    const flushes: (() => void)[] = [];
    const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
    const bulk = new Uint8Array(256 * 1024).fill(7);
    const small = () => encodeFrame({ type: 'ack', stream: 3, offset: 10 });
    const whole = encodeFrame({ type: 'data', stream: 5, offset: 0, payload: bulk });
    // A turn that starts with bulk waits for the turn's end.
    near.sendParts!(whole.subarray(0, DATA_HEAD_BYTES), bulk);
    near.send(small());
    near.send(small());
    near.sendParts!(whole.subarray(0, DATA_HEAD_BYTES), bulk);
    expect(near.bufferedAmount).toBeGreaterThanOrEqual(2 * bulk.length);
    await Promise.resolve();
    expect(sender.given).toHaveLength(0);
    flushes.splice(0)[0]!();
    // Two writes at most in the socket (one under way, one alone behind it): Node joins
    // (copies) only two or more waiting writes.
    expect(sender.given).toHaveLength(2);
    expect(sender.pending).toHaveLength(2);
    sender.finishWrites();
    expect(sender.given).toHaveLength(5);
    // The acks passed the queued bulk (one write of both), then each head and its payload.
    expect(sender.given[0]!.length).toBe(2 * (4 + small().length));
    expect(sender.given[1]!.length).toBe(4 + DATA_HEAD_BYTES);
    expect(sender.given[2]).toBe(bulk);
    expect(sender.given[3]!.length).toBe(4 + DATA_HEAD_BYTES);
    expect(sender.given[4]).toBe(bulk);
    expect(near.bufferedAmount).toBe(0);
  });

  it('fills its slabs for small frames again once their writes are done, never while the socket holds them', async () => {
    // Answers of a busy preview (4 KiB each, some acks and pongs between them) over many slabs,
    // writes finishing late and in bursts: what the socket was given is unchanged until its write
    // is done, every frame arrives, and the slabs come round again (the same memory, not fresh).
    const sender = new FakeSocket();
    const flushes: (() => void)[] = [];
    const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 600; i++) {
      const payload = new Uint8Array(4096 + (i % 7)).fill(i & 0xff);
      sent.push(encodeFrame({ type: 'data', stream: 1 + (i % 3), offset: i, payload }));
      near.sendData!(1 + (i % 3), i, payload);
      if (i % 5 === 0) {
        const ack = encodeFrame({ type: 'ack', stream: 2, offset: i });
        sent.push(ack);
        near.send(ack);
      }
      if (i % 3 === 0) flushes.splice(0).forEach((flush) => flush());
      if (i % 4 === 0) await Promise.resolve();
      if (i % 61 === 0) sender.pending.shift()?.();
      if (i % 150 === 0) sender.finishWrites();
    }
    await Promise.resolve();
    sender.settle(flushes);
    expect(sender.overwritten).toBe(0);
    const got: string[] = [];
    new FrameReader().push(concatBytes(sender.written), (frame) => got.push(Buffer.from(frame).toString('hex')));
    expect(got.sort()).toEqual(sent.map((frame) => Buffer.from(frame).toString('hex')).sort());
    // 600 answers are about ten slabs' worth; far fewer distinct buffers carried them.
    const buffers = new Set(sender.given.map((view) => view.buffer));
    expect(buffers.size).toBeLessThan(6);
  });

  it('lets a keystroke, an ack and a pong pass queued bulk, never between a head and its payload, never ahead of its own stream or a control frame', async () => {
    const sender = new FakeSocket();
    const flushes: (() => void)[] = [];
    const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
    const receiver = new FakeSocket();
    const far = wrapByteStream(receiver, { later: () => undefined });
    const got: string[] = [];
    far.onFrame((bytes) => {
      const frame = decodeFrame(bytes);
      got.push(frame.type === 'data' ? `data ${frame.stream} ${frame.payload.length}` : frame.type);
    });
    // Each write is played as one read here: a bulk payload comes as one part.
    far.onDataPart!((stream, _offset, payload) => got.push(`data ${stream} ${payload.length}`));
    const bulk = new Uint8Array(256 * 1024).fill(7);
    const data = (stream: number, offset: number, payload: Uint8Array) =>
      near.sendParts!(encodeFrame({ type: 'data', stream, offset, payload }).subarray(0, DATA_HEAD_BYTES), payload);
    const key = Uint8Array.of(0x61);
    // A download on stream 1: six bulk frames queued, two writes handed to the socket.
    for (let i = 0; i < 6; i++) data(1, i * bulk.length, bulk);
    flushes.splice(0)[0]!();
    expect(sender.pending).toHaveLength(2);
    // The first head's write finishes: the second head goes into the socket, its payload next.
    sender.pending.shift()!();
    expect(sender.given).toHaveLength(3);
    // Beside it: a keystroke on stream 3, an ack and a pong, a small frame on stream 1 (must stay
    // behind stream 1's bulk), a control message and a keystroke on stream 5 behind it.
    data(3, 0, key);
    near.sendAck!(4, 10);
    near.send(encodeFrame({ type: 'pong', nonce: 1 }));
    data(1, 6 * bulk.length, key);
    near.send(encodeFrame({ type: 'control', json: '{}' }));
    data(5, 0, key);
    // The keystroke, the ack and the pong leave in one write as soon as the second head's payload
    // has followed it: behind two bulk frames, not the six queued.
    sender.pending.shift()!();
    sender.pending.shift()!();
    const keystrokeWrite = sender.given.findIndex((bytes) => bytes.length === 3 * 4 + 14 + 13 + 9);
    expect(keystrokeWrite).toBe(4);
    expect(sender.given[3]).toBe(bulk);
    sender.finishWrites();
    for (const bytes of sender.written) receiver.emit('data', bytes);
    expect(got.filter((g) => !g.startsWith('data 1 '))).toEqual(['data 3 1', 'ack', 'pong', 'control', 'data 5 1']);
    // Stream 1's keystroke came after all its bulk, and the control before stream 5's keystroke.
    expect(got.filter((g) => g.startsWith('data 1 '))).toEqual([...Array(6).fill('data 1 262144'), 'data 1 1']);
    expect(got.indexOf('data 1 1')).toBeGreaterThan(got.lastIndexOf('data 1 262144'));
  });

  it('declares its lane (priorityFrameBytes): a data frame of that size passes queued bulk, one byte more waits behind it', () => {
    const sender = new FakeSocket();
    const flushes: (() => void)[] = [];
    const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
    const lane = near.priorityFrameBytes!;
    expect(lane).toBeGreaterThan(DATA_HEAD_BYTES);
    const bulk = new Uint8Array(256 * 1024).fill(7);
    const data = (stream: number, payload: Uint8Array) =>
      near.sendParts!(encodeFrame({ type: 'data', stream, offset: 0, payload }).subarray(0, DATA_HEAD_BYTES), payload);
    // Six bulk frames on stream 1; two writes in the socket (the first head, then its payload).
    for (let i = 0; i < 6; i++) data(1, bulk);
    flushes.splice(0)[0]!();
    // The largest lane frame on stream 3, one byte more on stream 5.
    data(3, new Uint8Array(lane - DATA_HEAD_BYTES).fill(0xa3));
    data(5, new Uint8Array(lane - DATA_HEAD_BYTES + 1).fill(0xa5));
    sender.finishWrites();
    const bulkWritesBefore = (marker: number) => {
      const at = sender.given.findIndex((bytes) => bytes.includes(marker));
      expect(at).toBeGreaterThan(0);
      return sender.given.slice(0, at).filter((bytes) => bytes === bulk).length;
    };
    // Behind the one payload under way, not the six queued; the bigger frame behind all of them.
    expect(bulkWritesBefore(0xa3)).toBe(1);
    expect(bulkWritesBefore(0xa5)).toBe(6);
  });

  it('writes a small frame after a quiet spell once its sender returns, with what it sent beside it, and batches the rest of the turn', async () => {
    const socket = new FakeSocket();
    const flushes: (() => void)[] = [];
    const transport = wrapByteStream(socket, { later: (flush) => flushes.push(flush) });
    const keystroke = encodeFrame({ type: 'data', stream: 1, offset: 0, payload: Uint8Array.of(0x61) });
    // A request and the ack it carries: one write, before the turn ends.
    transport.sendParts!(keystroke.subarray(0, DATA_HEAD_BYTES), keystroke.subarray(DATA_HEAD_BYTES));
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 1 }));
    expect(socket.given).toHaveLength(0);
    await Promise.resolve();
    expect(socket.given).toHaveLength(1);
    expect(socket.given[0]!.length).toBe(
      4 + keystroke.length + 4 + encodeFrame({ type: 'ack', stream: 1, offset: 1 }).length,
    );
    // Sent after that (a write is under way): batched behind it, after the turn.
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 2 }));
    await Promise.resolve();
    expect(socket.given).toHaveLength(1);
    flushes.splice(0).forEach((flush) => flush());
    expect(socket.given).toHaveLength(2);
    socket.finishWrites();
    expect(flushes).toHaveLength(0);

    // Quiet again: the next one goes at once too. A big frame never does.
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 3 }));
    await Promise.resolve();
    expect(socket.given).toHaveLength(3);
    socket.finishWrites();
    const big = encodeFrame({ type: 'data', stream: 1, offset: 1, payload: new Uint8Array(5000) });
    transport.sendParts!(big.subarray(0, DATA_HEAD_BYTES), big.subarray(DATA_HEAD_BYTES));
    await Promise.resolve();
    expect(socket.given).toHaveLength(3);
    flushes.splice(0).forEach((flush) => flush());
    expect(socket.given.length).toBeGreaterThan(3);

    // While an earlier write is still under way in the socket (a flood), a small frame waits.
    const before = socket.given.length;
    transport.send(encodeFrame({ type: 'ack', stream: 1, offset: 4 }));
    await Promise.resolve();
    expect(socket.given).toHaveLength(before);
    socket.finishWrites();
    flushes.splice(0).forEach((flush) => flush());
    expect(socket.given).toHaveLength(before + 1);
  });

  it("writes a stream's `now` bytes on a quiet link before write returns, and waits on a busy one", async () => {
    const socket = new FakeSocket();
    const flushes: (() => void)[] = [];
    const mux = new Mux(wrapByteStream(socket, { later: (flush) => flushes.push(flush) }), { role: 'client' });
    const stream = mux.openStream();
    const framesOf = (bytes: Uint8Array) => {
      const frames: ReturnType<typeof decodeFrame>[] = [];
      new FrameReader().push(bytes, (frame) => frames.push(decodeFrame(frame)));
      return frames;
    };
    try {
      // A keystroke on a quiet link: framed and in the socket when write returns.
      stream.write(Uint8Array.of(0x61), { now: true });
      expect(socket.given).toHaveLength(1);
      expect(framesOf(socket.given[0]!)).toEqual([
        { type: 'data', stream: stream.id, offset: 0, payload: Uint8Array.of(0x61) },
      ]);
      // The same without `now`: at the end of the microtask, as before.
      socket.finishWrites();
      stream.write(Uint8Array.of(0x62));
      expect(socket.given).toHaveLength(1);
      await Promise.resolve();
      await Promise.resolve();
      expect(socket.given).toHaveLength(2);
      // While a write is still under way (a flood), `now` bytes wait their turn like the rest.
      stream.write(Uint8Array.of(0x63), { now: true });
      expect(socket.given).toHaveLength(2);
      await Promise.resolve();
      socket.finishWrites();
      flushes.splice(0).forEach((flush) => flush());
      await Promise.resolve();
      flushes.splice(0).forEach((flush) => flush());
      expect(framesOf(concatBytes(socket.given.slice(2)))).toContainEqual({
        type: 'data',
        stream: stream.id,
        offset: 2,
        payload: Uint8Array.of(0x63),
      });
    } finally {
      mux.close();
    }
  });

  it("sends by sendData the bytes encodeFrame makes, keeping every frame and each stream's order through quiet spells, bulk and backpressure", async () => {
    // Frames of three streams (keystrokes, bulk), control frames and acks, sent by send,
    // sendParts and sendData, with writes finishing, turns ending and microtasks running between
    // them at random (acks by send and by sendAck): what arrives is every frame once, each stream's and the control frames in
    // the order sent.
    const op = fc.oneof(
      fc.record({
        data: fc.constantFrom(1, 2, 3),
        size: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 900, max: 1100 }), fc.constant(70_000)),
        how: fc.constantFrom('send', 'parts', 'data'),
      }),
      fc.record({ control: fc.nat(1000) }),
      fc.record({ ack: fc.constantFrom(1, 2, 3), how: fc.constantFrom('send', 'ack') }),
      fc.record({ step: fc.constantFrom('finishOne', 'finishAll', 'turn', 'microtask') }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const sender = new FakeSocket();
        const flushes: (() => void)[] = [];
        const near = wrapByteStream(sender, { later: (flush) => flushes.push(flush) });
        const offsets = new Map<number, number>();
        const sent: Uint8Array[] = [];
        let n = 0;
        for (const o of ops) {
          if ('data' in o) {
            const offset = offsets.get(o.data) ?? 0;
            offsets.set(o.data, offset + o.size);
            const payload = new Uint8Array(o.size).fill(n++ & 0xff);
            const whole = encodeFrame({ type: 'data', stream: o.data, offset, payload });
            sent.push(whole);
            if (o.how === 'send') near.send(whole);
            else if (o.how === 'parts') near.sendParts!(whole.subarray(0, DATA_HEAD_BYTES), payload);
            else near.sendData!(o.data, offset, payload);
          } else if ('control' in o) {
            const whole = encodeFrame({ type: 'control', json: JSON.stringify(o.control + n++) });
            sent.push(whole);
            near.send(whole);
          } else if ('ack' in o) {
            const offset = n++;
            sent.push(encodeFrame({ type: 'ack', stream: o.ack, offset }));
            if (o.how === 'send') near.send(encodeFrame({ type: 'ack', stream: o.ack, offset }));
            else near.sendAck!(o.ack, offset);
          } else if (o.step === 'finishOne') sender.pending.shift()?.();
          else if (o.step === 'finishAll') sender.finishWrites();
          else if (o.step === 'turn') flushes.splice(0).forEach((flush) => flush());
          else await Promise.resolve();
        }
        await Promise.resolve();
        sender.settle(flushes);
        expect(near.bufferedAmount).toBe(0);
        const got: Uint8Array[] = [];
        new FrameReader().push(concatBytes(sender.written), (frame) => got.push(frame.slice()));
        const key = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
        // Every frame once, byte for byte (sendData's head is encodeFrame's).
        expect(got.map(key).sort()).toEqual(sent.map(key).sort());
        // Each stream's data in order, the control frames in order (acks may pass bulk).
        const orderOf = (frames: Uint8Array[], pick: (frame: Uint8Array) => boolean) => frames.filter(pick).map(key);
        for (const stream of [1, 2, 3]) {
          const ofStream = (frame: Uint8Array) => {
            const decoded = decodeFrame(frame);
            return decoded.type === 'data' && decoded.stream === stream;
          };
          expect(orderOf(got, ofStream)).toEqual(orderOf(sent, ofStream));
        }
        const control = (frame: Uint8Array) => frame[0] === FRAME_TYPE.control;
        expect(orderOf(got, control)).toEqual(orderOf(sent, control));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses by sendData and sendAck a stream or offset it cannot encode, with E_PROTOCOL, and queues nothing of it', async () => {
    const socket = new FakeSocket();
    const transport = wrapByteStream(socket, { later: (flush) => flush() });
    for (const send of [
      (stream: number, offset: number) => transport.sendData!(stream, offset, Uint8Array.of(1)),
      (stream: number, offset: number) => transport.sendAck!(stream, offset),
    ]) {
      for (const [stream, offset] of [
        [-1, 0],
        [2 ** 32, 0],
        [1, -1],
        [1, 2 ** 53],
        [1.5, 0],
      ] as const) {
        let error: unknown;
        try {
          send(stream, offset);
        } catch (thrown) {
          error = thrown;
        }
        expect((error as HangarError).code).toBe('E_PROTOCOL');
      }
    }
    expect(transport.bufferedAmount).toBe(0);
    // The largest stream and offset go through as encodeFrame writes them.
    transport.sendData!(0xffffffff, Number.MAX_SAFE_INTEGER, Uint8Array.of(7));
    transport.sendAck!(0xffffffff, Number.MAX_SAFE_INTEGER);
    await Promise.resolve();
    expect(socket.given).toHaveLength(1);
    expect(
      same(
        socket.given[0]!,
        concatBytes([
          encodeLengthPrefixed(
            encodeFrame({
              type: 'data',
              stream: 0xffffffff,
              offset: Number.MAX_SAFE_INTEGER,
              payload: Uint8Array.of(7),
            }),
          ),
          encodeLengthPrefixed(encodeFrame({ type: 'ack', stream: 0xffffffff, offset: Number.MAX_SAFE_INTEGER })),
        ]),
      ),
    ).toBe(true);
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
