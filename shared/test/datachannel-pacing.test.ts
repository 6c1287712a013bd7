import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DATACHANNEL_MESSAGE_BYTES,
  PACED_FEATURE,
  encodeFrame,
  useTransportFeatures,
  wrapDataChannel,
  type CloseReason,
  type DataChannelLike,
  type Frame,
} from '../src/index.js';
import { fakeChannel } from './support/fake-datachannel.js';

/**
 * Two data-channel transports joined by fake channels: what one side sends waits in its `wire`
 * until the test delivers it; turns end when the test says.
 */
function link(paced: boolean, roundTripMs: (() => number) | null = () => 1) {
  const turnEnds: (() => void)[] = [];
  const make = () => {
    const { channel, sent: wire, receive } = fakeChannel();
    const transport = wrapDataChannel(channel, {
      later: (flush) => turnEnds.push(flush),
      ...(roundTripMs ? { roundTripMs } : {}),
    });
    useTransportFeatures(transport, paced ? ['dc-joined-frames', PACED_FEATURE] : ['dc-joined-frames']);
    const frames: Uint8Array[] = [];
    transport.onFrame((frame) => frames.push(frame.slice()));
    const closes: CloseReason[] = [];
    transport.onClose((reason) => closes.push(reason));
    return { transport, wire, frames, closes, receive };
  };
  const a = make();
  const b = make();
  const endTurn = () => {
    while (turnEnds.length > 0) turnEnds.shift()!();
  };
  /** Delivers up to `count` of a's messages to b, and b's (its reports) back to a. */
  const deliver = (count = Infinity) => {
    for (let i = 0; i < count && a.wire.length > 0; i++) b.receive(a.wire.shift()!);
    while (b.wire.length > 0) a.receive(b.wire.shift()!);
  };
  return { a, b, endTurn, deliver };
}

/** Which frames must keep their order: a stream's (data, ack, close), and control/ping/pong among themselves. */
function orderKey(frame: Frame): string {
  return frame.type === 'data' || frame.type === 'ack' || frame.type === 'close' ? `s${frame.stream}` : 'c';
}

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('data' as const),
      stream: fc.integer({ min: 1, max: 4 }),
      offset: fc.nat(1000),
      payload: fc
        .oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 9000, max: 300_000 }))
        .map((n) => new Uint8Array(n).fill(n & 0xff)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('ack' as const),
      stream: fc.integer({ min: 1, max: 4 }),
      offset: fc.nat(1000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('close' as const),
      stream: fc.integer({ min: 1, max: 4 }),
      reason: fc.constant('{}'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('control' as const),
      json: fc.oneof(fc.constant('{"a":1}'), fc.constant(`"${'x'.repeat(70_000)}"`)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('ping' as const), nonce: fc.nat(1000) }) },
);

describe('data-channel transport: pacing (dc-paced)', () => {
  it('every frame arrives whole, each stream in order and control in order, whatever goes ahead', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(frameArb, { maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        fc.nat(8),
        (turns, step) => {
          // No round trip from the channel: the reports' own round trips set the cap.
          const { a, b, endTurn, deliver } = link(true, null);
          const sent: { key: string; bytes: Uint8Array }[] = [];
          for (const turn of turns) {
            for (const frame of turn) {
              const bytes = encodeFrame(frame);
              sent.push({ key: orderKey(frame), bytes: bytes.slice() });
              a.transport.send(bytes);
            }
            endTurn();
            deliver(step); // part of what is on the wire arrives between turns
          }
          for (let rounds = 0; rounds < 10_000 && (a.wire.length > 0 || a.transport.bufferedAmount > 0); rounds++) {
            endTurn();
            deliver();
          }
          expect(a.closes).toEqual([]);
          expect(b.closes).toEqual([]);
          for (const message of a.wire) expect(message.length).toBeLessThanOrEqual(DATACHANNEL_MESSAGE_BYTES);
          expect(b.frames).toHaveLength(sent.length);
          // Per key, the same frames in the same order.
          const byKey = (list: { key: string; bytes: Uint8Array }[]) => {
            const keys = new Map<string, string[]>();
            for (const { key, bytes } of list)
              keys.set(key, [...(keys.get(key) ?? []), Buffer.from(bytes).toString('base64')]);
            return keys;
          };
          const keyOf = (bytes: Uint8Array) => sent.find((s) => Buffer.compare(s.bytes, bytes) === 0)!.key;
          expect(byKey(b.frames.map((bytes) => ({ key: keyOf(bytes), bytes })))).toEqual(byKey(sent));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps at most the cap in flight until the peer reports, and a small frame of another stream goes ahead of the bulk', () => {
    const { a, b, endTurn, deliver } = link(true);
    const cap = a.transport.paced.cap;
    const big = (offset: number) =>
      encodeFrame({ type: 'data', stream: 3, offset, payload: new Uint8Array(256 * 1024) });
    for (let i = 0; i < 16; i++) a.transport.send(big(i * 256 * 1024));
    const onWire = () => a.wire.reduce((n, m) => n + m.length, 0);
    expect(onWire()).toBeGreaterThanOrEqual(cap);
    expect(onWire()).toBeLessThan(cap + DATACHANNEL_MESSAGE_BYTES);
    // The bulk waits here (and counts in bufferedAmount) until b reports what it consumed.
    expect(a.transport.bufferedAmount).toBeGreaterThan(3 * 1024 * 1024);
    const wireBefore = a.wire.length;
    a.transport.send(encodeFrame({ type: 'data', stream: 1, offset: 0, payload: Uint8Array.of(97) }));
    endTurn();
    // The keystroke left at once, behind only what was in flight already.
    expect(a.wire.length).toBe(wireBefore + 1);
    deliver();
    const keystroke = b.frames.findIndex((f) => f.length === 14);
    expect(keystroke).toBeGreaterThanOrEqual(0);
    expect(keystroke).toBeLessThanOrEqual(Math.ceil(cap / (256 * 1024)));
    // A stream's later small frame stays behind its own bulk: an ack of stream 3 comes after its data.
    a.transport.send(encodeFrame({ type: 'ack', stream: 3, offset: 5 }));
    for (let rounds = 0; rounds < 1000 && (a.wire.length > 0 || a.transport.bufferedAmount > 0); rounds++) {
      endTurn();
      deliver();
    }
    expect(b.frames).toHaveLength(18);
    expect(b.frames[17]!.length).toBe(13);
    expect(a.closes).toEqual([]);
  });

  it('declares its lane while pacing (priorityFrameBytes): a data frame of that size goes ahead of held bulk, one byte more waits', () => {
    expect(link(false).a.transport.priorityFrameBytes).toBeUndefined();
    const { a, endTurn } = link(true);
    const lane = a.transport.priorityFrameBytes!;
    expect(lane).toBeGreaterThan(13);
    for (let i = 0; i < 16; i++)
      a.transport.send(encodeFrame({ type: 'data', stream: 3, offset: i, payload: new Uint8Array(256 * 1024) }));
    expect(a.transport.bufferedAmount).toBeGreaterThan(3 * 1024 * 1024);
    const data = (stream: number, size: number) =>
      encodeFrame({ type: 'data', stream, offset: 0, payload: new Uint8Array(size - 13).fill(0xa0 + stream) });
    const wireBefore = a.wire.length;
    a.transport.send(data(1, lane));
    a.transport.send(data(5, lane + 1));
    endTurn();
    // Only the lane frame left (held bulk waits for reports); the bigger one waits behind the bulk.
    expect(a.wire.length).toBe(wireBefore + 1);
    expect(a.wire.at(-1)!.includes(0xa1)).toBe(true);
    expect(a.wire.at(-1)!.includes(0xa5)).toBe(false);
  });

  it('without dc-paced nothing is held back or reordered, and a report is refused', () => {
    const { a, b, endTurn, deliver } = link(false);
    for (let i = 0; i < 8; i++)
      a.transport.send(encodeFrame({ type: 'data', stream: 3, offset: i, payload: new Uint8Array(100_000) }));
    a.transport.send(encodeFrame({ type: 'data', stream: 1, offset: 0, payload: Uint8Array.of(97) }));
    endTurn();
    deliver();
    expect(b.frames.map((f) => f.length)).toEqual([...Array(8).fill(100_013), 14]);
    const report = new Uint8Array(9);
    report[0] = 3;
    b.receive(report);
    expect(b.closes[0]?.message).toContain('not a link chunk');
  });

  it('a report of bytes never sent closes the link with E_PROTOCOL', () => {
    const { a } = link(true);
    const report = new Uint8Array(9);
    report[0] = 3;
    new DataView(report.buffer).setFloat64(1, 1e6);
    a.receive(report);
    expect(a.closes[0]).toMatchObject({ code: 'E_PROTOCOL' });
    expect(a.closes[0]!.message).toContain('never sent');
  });
});
