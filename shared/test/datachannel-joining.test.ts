import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DATACHANNEL_MESSAGE_BYTES,
  JOINED_FRAMES_FEATURE,
  LinkChallenge,
  PACED_FEATURE,
  LinkHello,
  SCHEMA_VERSION,
  offeredTransportFeatures,
  useTransportFeatures,
  wrapDataChannel,
  type CloseReason,
  type DataChannelLike,
  type DataChannelTransport,
} from '../src/index.js';
import { fakeChannel } from './support/fake-datachannel.js';

/** A transport over a fake channel whose turns end when the test says (endTurn). */
function side() {
  const fake = fakeChannel();
  const turnEnds: (() => void)[] = [];
  const transport = wrapDataChannel(fake.channel, { later: (flush) => turnEnds.push(flush) });
  const frames: Uint8Array[] = [];
  transport.onFrame((frame) => frames.push(frame.slice()));
  const closes: CloseReason[] = [];
  transport.onClose((reason) => closes.push(reason));
  const endTurn = () => {
    for (const flush of turnEnds.splice(0)) flush();
  };
  return { ...fake, transport, frames, closes, endTurn };
}

function bytes(length: number, seed: number): Uint8Array {
  const frame = new Uint8Array(length);
  for (let i = 0; i < length; i++) frame[i] = (seed + i * 31) & 0xff;
  return frame;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const MAX_JOINED_FRAME = DATACHANNEL_MESSAGE_BYTES - 5;

describe('data-channel transport: joined frames', () => {
  it('any frames in any turns arrive whole and in order, in messages of at most 64 KiB', () => {
    const size = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 300 }) },
      { weight: 2, arbitrary: fc.integer({ min: MAX_JOINED_FRAME - 3, max: MAX_JOINED_FRAME + 3 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 140_000 }) },
    );
    const turns = fc.array(fc.array(size, { maxLength: 40 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(turns, fc.boolean(), (list, joining) => {
        const from = side();
        const to = side();
        if (joining) from.transport.joinedFrames.enable();
        const expected: Uint8Array[] = [];
        for (const turn of list) {
          const before = from.sent.length;
          for (const length of turn) {
            const frame = bytes(length, expected.length);
            expected.push(frame.slice());
            from.transport.send(frame);
            frame.fill(0); // the caller may reuse its buffer once send() returned
          }
          from.endTurn();
          // A turn of small frames is one message.
          if (joining && turn.length >= 1 && turn.every((n) => n <= 300)) expect(from.sent.length - before).toBe(1);
        }
        for (const message of from.sent) {
          expect(message.length).toBeLessThanOrEqual(DATACHANNEL_MESSAGE_BYTES);
          // What an older peer understands (a chunk of one frame) unless joining was agreed.
          if (!joining) expect(message[0]).toBeLessThanOrEqual(1);
          to.receive(message);
        }
        expect(to.closes).toEqual([]);
        expect(to.frames.map((f) => f.length)).toEqual(expected.map((f) => f.length));
        for (let i = 0; i < expected.length; i++) expect(same(to.frames[i]!, expected[i]!)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('turns that wait while the channel is full keep their own bytes: later turns reuse no buffer under them', () => {
    // A channel that copies what it is handed (as node-datachannel does) and is full when the test
    // says: turns flushed meanwhile wait in the transport while later turns are written.
    const turns = fc.array(
      fc.record({
        sizes: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 12 }),
        full: fc.boolean(),
      }),
      { minLength: 1, maxLength: 12 },
    );
    fc.assert(
      fc.property(turns, fc.boolean(), (list, pacing) => {
        let buffered = 0;
        let low: (() => void) | undefined;
        const wire: Uint8Array[] = [];
        const channel: DataChannelLike = {
          ...fakeChannel().channel,
          sendMessageBinary: (message) => {
            wire.push(message.slice());
            buffered += message.length;
            return true;
          },
          bufferedAmount: () => buffered,
          onBufferedAmountLow: (listener) => (low = listener),
        };
        const ends: (() => void)[] = [];
        const from = wrapDataChannel(channel, {
          later: (flush) => ends.push(flush),
          channelHighWater: 64 * 1024,
          inFlightAllowance: 0,
        });
        from.joinedFrames.enable();
        if (pacing) from.paced.enable();
        const to = side();
        const expected: Uint8Array[] = [];
        for (const turn of list) {
          // Full: what the channel holds is past its high water until it drains below.
          buffered = turn.full ? 1024 * 1024 : 0;
          if (!turn.full) low?.();
          for (const length of turn.sizes) {
            const frame = bytes(length, expected.length);
            expected.push(frame.slice());
            from.send(frame);
          }
          for (const flush of ends.splice(0)) flush();
        }
        // The channel drains, as often as the transport fills it again (it stops at its high water:
        // what the turns queued may be more than one channel's worth).
        for (let sent = -1; sent !== wire.length;) {
          sent = wire.length;
          buffered = 0;
          low?.();
        }
        for (const message of wire) if (message[0] !== 3) to.receive(message);
        expect(to.closes).toEqual([]);
        expect(to.frames.length).toBe(expected.length);
        for (let i = 0; i < expected.length; i++) expect(same(to.frames[i]!, expected[i]!)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('every frame of a turn waits for its end, the first too: one message a turn', () => {
    const from = side();
    const to = side();
    from.transport.joinedFrames.enable();
    // A keystroke alone in its turn: a plain one-frame chunk, as an older peer reads it.
    from.transport.send(bytes(10, 1));
    expect(from.sent).toHaveLength(0);
    expect(from.transport.bufferedAmount).toBe(4 + 10);
    from.endTurn();
    expect(from.sent).toHaveLength(1);
    expect(from.sent[0]![0]).toBe(1);
    for (let i = 0; i < 20; i++) from.transport.send(bytes(100, i));
    expect(from.sent).toHaveLength(1);
    expect(from.transport.bufferedAmount).toBe(20 * (4 + 100));
    from.endTurn();
    expect(from.sent).toHaveLength(2);
    expect(from.sent[1]![0]).toBe(2);
    expect(from.sent[1]!.length).toBe(1 + 20 * (4 + 100));
    expect(from.transport.bufferedAmount).toBe(0);
    for (const message of from.sent) to.receive(message);
    expect(to.frames.map((f) => f.length)).toEqual([10, ...Array(20).fill(100)]);
    expect(to.closes).toEqual([]);
  });

  it('a frame of exactly the largest joinable size joins; one byte more goes on its own', () => {
    const from = side();
    from.transport.joinedFrames.enable();
    from.transport.send(bytes(1, 0)); // opens the turn
    from.transport.send(bytes(MAX_JOINED_FRAME, 1));
    from.endTurn();
    expect(from.sent.map((m) => m.length)).toEqual([2, DATACHANNEL_MESSAGE_BYTES - 4]);
    from.transport.send(bytes(1, 0));
    from.transport.send(bytes(3, 0));
    from.transport.send(bytes(MAX_JOINED_FRAME + 1, 2));
    // The frames this turn held went before the big one, in order.
    expect(from.sent.slice(2).map((m) => [m[0], m.length])).toEqual([
      [2, 1 + 5 + 7],
      [1, MAX_JOINED_FRAME + 2],
    ]);
  });

  it('a malformed joined message closes the link with E_PROTOCOL and a reason that says what was wrong', () => {
    const cases: [number[], string][] = [
      [[2], 'empty joined message'],
      [[2, 0, 0], 'inside a frame length'],
      [[2, 0, 0, 0, 9, 1, 2], 'inside a frame'],
      [[3, 1], 'not a link chunk'],
    ];
    for (const [message, why] of cases) {
      const to = side();
      to.receive(Uint8Array.from(message));
      expect(to.closes).toHaveLength(1);
      expect(to.closes[0]!.code).toBe('E_PROTOCOL');
      expect(to.closes[0]!.message).toContain(why);
      expect(to.texts).toHaveLength(1); // the reason went to the peer
    }
    const to = side();
    to.receive(Uint8Array.of(0, 7)); // the start of a chunked frame
    to.receive(Uint8Array.of(2, 0, 0, 0, 1, 5));
    expect(to.closes[0]!.message).toContain('inside a frame that was split');
  });

  it('joining is on only when both handshake messages name it; an older peer names nothing', () => {
    const device = side().transport as DataChannelTransport;
    const agent = side().transport as DataChannelTransport;
    const offered = offeredTransportFeatures(device);
    expect(offered).toEqual([JOINED_FRAMES_FEATURE, PACED_FEATURE]);
    const hello = LinkHello.parse({
      schema_version: SCHEMA_VERSION,
      kind: 'link.hello',
      mode: 'auth',
      device_key: 'a'.repeat(64),
      device_name: 'laptop',
      nonce: 'b'.repeat(64),
      transport_features: [JOINED_FRAMES_FEATURE],
    });
    // A device that joins but does not pace: the agent turns on joining only.
    expect(useTransportFeatures(agent, hello.transport_features)).toEqual([JOINED_FRAMES_FEATURE]);
    expect(agent.joinedFrames.enabled).toBe(true);
    expect(agent.paced.enabled).toBe(false);
    const challenge = LinkChallenge.parse({
      schema_version: SCHEMA_VERSION,
      kind: 'link.challenge',
      agent_key: 'c'.repeat(64),
      nonce: 'd'.repeat(64),
      transport_features: [JOINED_FRAMES_FEATURE, 'something-later'],
    });
    expect(useTransportFeatures(device, challenge.transport_features)).toEqual([JOINED_FRAMES_FEATURE]);
    expect(device.joinedFrames.enabled).toBe(true);
    expect(device.paced.enabled).toBe(false);
    // Both name both: both on.
    const pacer = side().transport as DataChannelTransport;
    expect(useTransportFeatures(pacer, offered)).toEqual([JOINED_FRAMES_FEATURE, PACED_FEATURE]);
    expect(pacer.paced.enabled).toBe(true);

    // An older agent's challenge has no field: the device keeps one frame per message.
    const withOld = side().transport;
    expect(useTransportFeatures(withOld, undefined)).toEqual([]);
    expect(withOld.joinedFrames.enabled).toBe(false);
    expect(() => LinkHello.parse({ ...hello, transport_features: ['Bad Name'] })).toThrow(/transport feature/);
  });
});
