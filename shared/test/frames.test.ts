import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FRAME_TYPE, HangarError, MAX_STREAM_ID, type Frame } from '@hangar/shared';

const streamId = fc.integer({ min: 0, max: MAX_STREAM_ID });
const offset = fc.maxSafeInteger().map(Math.abs);
const frameArbitrary: fc.Arbitrary<Frame> = fc.oneof(
  fc.string({ unit: 'grapheme' }).map((json) => ({ type: 'control' as const, json })),
  fc
    .record({ stream: streamId, offset, payload: fc.uint8Array({ maxLength: 2048 }) })
    .map((f) => ({ type: 'data' as const, ...f })),
  fc.record({ stream: streamId, offset }).map((f) => ({ type: 'ack' as const, ...f })),
  fc
    .record({ stream: streamId, reason: fc.string({ unit: 'grapheme' }) })
    .map((f) => ({ type: 'close' as const, ...f })),
  offset.map((nonce) => ({ type: 'ping' as const, nonce })),
  offset.map((nonce) => ({ type: 'pong' as const, nonce })),
);

function expectProtocolError(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(HangarError);
    expect((error as HangarError).code).toBe('E_PROTOCOL');
    return;
  }
  expect.unreachable('expected an E_PROTOCOL error');
}

describe('frames', () => {
  it('every kind of frame arrives exactly as it was sent', () => {
    fc.assert(
      fc.property(frameArbitrary, (frame) => {
        expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
      }),
      { numRuns: 500 },
    );
  });

  it('a frame inside a larger buffer (a Node Buffer slice) decodes the same', () => {
    fc.assert(
      fc.property(frameArbitrary, fc.uint8Array({ maxLength: 16 }), (frame, prefix) => {
        const encoded = encodeFrame(frame);
        const backing = new Uint8Array(prefix.length + encoded.length);
        backing.set(prefix);
        backing.set(encoded, prefix.length);
        expect(decodeFrame(backing.subarray(prefix.length))).toEqual(frame);
      }),
    );
  });

  it('garbage from the network either decodes or is rejected as a protocol error, never anything else', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // Garbage behind a valid type byte reaches the per-type checks instead of "unknown type".
      fc.tuple(fc.integer({ min: 1, max: 6 }), fc.uint8Array({ maxLength: 64 })).map(([type, rest]) => {
        const out = new Uint8Array(rest.length + 1);
        out[0] = type;
        out.set(rest, 1);
        return out;
      }),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        try {
          decodeFrame(input);
        } catch (error) {
          expect(error).toBeInstanceOf(HangarError);
          expect((error as HangarError).code).toBe('E_PROTOCOL');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('offsets beyond 2^53-1 are rejected, not silently rounded', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: BigInt(Number.MAX_SAFE_INTEGER) + 1n, max: 2n ** 64n - 1n }),
        fc.constantFrom(FRAME_TYPE.data, FRAME_TYPE.ack, FRAME_TYPE.ping, FRAME_TYPE.pong),
        (tooBig, type) => {
          const isPing = type === FRAME_TYPE.ping || type === FRAME_TYPE.pong;
          const bytes = new Uint8Array(isPing ? 9 : 13);
          const view = new DataView(bytes.buffer);
          view.setUint8(0, type);
          if (isPing) view.setBigUint64(1, tooBig);
          else view.setBigUint64(5, tooBig);
          expectProtocolError(() => decodeFrame(bytes));
        },
      ),
    );
    expectProtocolError(() => encodeFrame({ type: 'ack', stream: 1, offset: Number.MAX_SAFE_INTEGER + 1 }));
    expectProtocolError(() => encodeFrame({ type: 'data', stream: 1, offset: -1, payload: new Uint8Array() }));
  });

  it('a control frame that is not UTF-8 is a protocol error', () => {
    expectProtocolError(() => decodeFrame(Uint8Array.of(FRAME_TYPE.control, 0xff, 0xfe)));
  });
});
