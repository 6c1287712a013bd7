import { HangarError } from './errors.js';

/**
 * Binary frames of the link. One transport message carries exactly one frame.
 *
 *   control  0x01  [type][utf-8 JSON]                      stream 0: requests, responses, events, handshake
 *   data     0x02  [type][u32 stream][u64 offset][bytes]   offset = position of the first byte in the stream
 *   ack      0x03  [type][u32 stream][u64 offset]          receiver consumed everything before offset (credit + ack)
 *   close    0x04  [type][u32 stream][utf-8 JSON reason]
 *   ping     0x05  [type][u64 nonce]
 *   pong     0x06  [type][u64 nonce]
 *
 * Offsets are absolute byte positions (terminal output keeps counting across reconnects), so
 * they are u64 on the wire and limited to 2^53-1 in JS.
 */
export type Frame =
  | { type: 'control'; json: string }
  | { type: 'data'; stream: number; offset: number; payload: Uint8Array }
  | { type: 'ack'; stream: number; offset: number }
  | { type: 'close'; stream: number; reason: string }
  | { type: 'ping'; nonce: number }
  | { type: 'pong'; nonce: number };

export const FRAME_TYPE = { control: 1, data: 2, ack: 3, close: 4, ping: 5, pong: 6 } as const;

/** Largest frame a peer may send; anything bigger is a protocol error. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** The parts one after another in one new array (the pieces of one message, in order). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
export const MAX_STREAM_ID = 0xffffffff;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function header(type: number, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, type);
  return { bytes, view };
}

function checkStream(stream: number): void {
  if (!Number.isInteger(stream) || stream < 0 || stream > MAX_STREAM_ID) {
    throw new HangarError('E_PROTOCOL', `stream id ${stream} is not a u32`);
  }
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new HangarError('E_PROTOCOL', `offset ${offset} is not a non-negative safe integer`);
  }
}

/** Bytes before a data frame's payload: type, stream, offset. */
export const DATA_HEAD_BYTES = 13;

/** A safe integer as a u64, without a BigInt per call (the hot path writes one per frame). */
function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x1_0000_0000));
  view.setUint32(at + 4, value >>> 0);
}

/**
 * The head of a data frame alone: a transport that can send the head and the payload as two
 * parts (FrameTransport.sendParts) spares the copy of the payload that encodeFrame makes.
 */
export function encodeDataHead(stream: number, offset: number): Uint8Array {
  checkStream(stream);
  checkOffset(offset);
  const bytes = new Uint8Array(DATA_HEAD_BYTES);
  writeStreamHead(bytes, 0, FRAME_TYPE.data, stream, offset);
  return bytes;
}

/** Throws E_PROTOCOL unless `stream` and `offset` can head a data frame (as encodeDataHead does). */
export function checkDataHead(stream: number, offset: number): void {
  checkStream(stream);
  checkOffset(offset);
}

/**
 * Writes a data frame's head into `bytes` at `at` (DATA_HEAD_BYTES), byte by byte: no buffer or
 * DataView of its own, for a transport that writes frames into a buffer it keeps (a keystroke's
 * head cost some 25 µs on a cold cache as two fresh objects). The caller has checked the values
 * with checkDataHead.
 */
export function writeDataHead(bytes: Uint8Array, at: number, stream: number, offset: number): void {
  writeStreamHead(bytes, at, FRAME_TYPE.data, stream, offset);
}

/** An ack frame's size: [type][u32 stream][u64 offset]. */
export const ACK_FRAME_BYTES = 13;

/**
 * Writes an ack frame into `bytes` at `at` (ACK_FRAME_BYTES), as writeDataHead does a data
 * frame's head: for a transport that writes frames into a buffer it keeps. The caller has checked
 * the values with checkDataHead.
 */
export function writeAckFrame(bytes: Uint8Array, at: number, stream: number, offset: number): void {
  writeStreamHead(bytes, at, FRAME_TYPE.ack, stream, offset);
}

/** [type][u32 stream][u64 offset] at `at`, byte by byte (a DataView per frame costs more, cold). */
function writeStreamHead(bytes: Uint8Array, at: number, type: number, stream: number, offset: number): void {
  const high = Math.floor(offset / 0x1_0000_0000);
  const low = offset >>> 0;
  bytes[at] = type;
  bytes[at + 1] = stream >>> 24;
  bytes[at + 2] = (stream >>> 16) & 0xff;
  bytes[at + 3] = (stream >>> 8) & 0xff;
  bytes[at + 4] = stream & 0xff;
  bytes[at + 5] = high >>> 24;
  bytes[at + 6] = (high >>> 16) & 0xff;
  bytes[at + 7] = (high >>> 8) & 0xff;
  bytes[at + 8] = high & 0xff;
  bytes[at + 9] = low >>> 24;
  bytes[at + 10] = (low >>> 16) & 0xff;
  bytes[at + 11] = (low >>> 8) & 0xff;
  bytes[at + 12] = low & 0xff;
}

export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'control': {
      const json = encoder.encode(frame.json);
      const { bytes } = header(FRAME_TYPE.control, 1 + json.length);
      bytes.set(json, 1);
      return bytes;
    }
    case 'data': {
      checkStream(frame.stream);
      checkOffset(frame.offset);
      const bytes = new Uint8Array(DATA_HEAD_BYTES + frame.payload.length);
      writeStreamHead(bytes, 0, FRAME_TYPE.data, frame.stream, frame.offset);
      bytes.set(frame.payload, DATA_HEAD_BYTES);
      return bytes;
    }
    case 'ack': {
      checkStream(frame.stream);
      checkOffset(frame.offset);
      // One per keystroke and per echo (it rides them): no DataView.
      const bytes = new Uint8Array(ACK_FRAME_BYTES);
      writeStreamHead(bytes, 0, FRAME_TYPE.ack, frame.stream, frame.offset);
      return bytes;
    }
    case 'close': {
      checkStream(frame.stream);
      const reason = encoder.encode(frame.reason);
      const { bytes, view } = header(FRAME_TYPE.close, 5 + reason.length);
      view.setUint32(1, frame.stream);
      bytes.set(reason, 5);
      return bytes;
    }
    case 'ping':
    case 'pong': {
      checkOffset(frame.nonce);
      const { bytes, view } = header(FRAME_TYPE[frame.type], 9);
      setU64(view, 1, frame.nonce);
      return bytes;
    }
  }
}

function readOffset(view: DataView, at: number): number {
  const high = view.getUint32(at);
  // 2^53-1 has 21 bits above the low 32.
  if (high > 0x1f_ffff) {
    throw new HangarError('E_PROTOCOL', `offset ${view.getBigUint64(at)} exceeds 2^53-1`);
  }
  return high * 0x1_0000_0000 + view.getUint32(at + 4);
}

function need(bytes: Uint8Array, size: number, what: string): void {
  if (bytes.length < size) {
    throw new HangarError('E_PROTOCOL', `${what} frame is ${bytes.length} bytes, needs at least ${size}`);
  }
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new HangarError('E_PROTOCOL', `${what} frame is not valid UTF-8`);
  }
}

/** Decodes one frame; throws HangarError E_PROTOCOL (never anything else) on malformed input. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length === 0) throw new HangarError('E_PROTOCOL', 'empty frame');
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new HangarError('E_PROTOCOL', `frame of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint8(0);
  switch (type) {
    case FRAME_TYPE.control:
      return { type: 'control', json: utf8(bytes.subarray(1), 'control') };
    case FRAME_TYPE.data:
      need(bytes, 13, 'data');
      return {
        type: 'data',
        stream: view.getUint32(1),
        offset: readOffset(view, 5),
        payload: bytes.subarray(13),
      };
    case FRAME_TYPE.ack:
      need(bytes, 13, 'ack');
      if (bytes.length !== 13) throw new HangarError('E_PROTOCOL', `ack frame must be 13 bytes, got ${bytes.length}`);
      return { type: 'ack', stream: view.getUint32(1), offset: readOffset(view, 5) };
    case FRAME_TYPE.close:
      need(bytes, 5, 'close');
      return { type: 'close', stream: view.getUint32(1), reason: utf8(bytes.subarray(5), 'close') };
    case FRAME_TYPE.ping:
    case FRAME_TYPE.pong:
      if (bytes.length !== 9)
        throw new HangarError('E_PROTOCOL', `ping/pong frame must be 9 bytes, got ${bytes.length}`);
      return { type: type === FRAME_TYPE.ping ? 'ping' : 'pong', nonce: readOffset(view, 1) };
    default:
      throw new HangarError('E_PROTOCOL', `unknown frame type 0x${type.toString(16)}`);
  }
}
