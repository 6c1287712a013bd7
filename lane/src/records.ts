/**
 * Lane records (lane/PROTOCOL.md, "Wire"): the preface, the per-direction keys and the sealed
 * records, in TypeScript with node:crypto. The native relay speaks the same format; this half is
 * what HELLO/ACCEPT/REFUSE use before a socket is handed over, and what the tests check it against.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';

/** The 8 bytes a lane starts with ("HGLANE/1"; a TLS ClientHello starts 0x16, so one port serves both). */
export const LANE_PREFACE: Buffer = Buffer.from('HGLANE/1', 'latin1');
/** preface 8 + grant_id 16 + lane_no 8. */
export const LANE_HEADER_LENGTH = 32;
export const GRANT_ID_LENGTH = 16;

export enum RecordType {
  Data = 0,
  Eof = 1,
  Close = 2,
  Hello = 3,
  Accept = 4,
  Refuse = 5,
}

/** The most bytes of stream one DATA record carries. */
export const MAX_RECORD_PAYLOAD = 65536;
/** The most bytes of JSON a CLOSE, HELLO, ACCEPT or REFUSE record carries. */
export const MAX_CONTROL_PAYLOAD = 4096;
const TAG_LENGTH = 16;
const LENGTH_BYTES = 4;
/** The smallest and largest sealed body: a type byte (and up to 64 KiB of payload) plus the tag. */
export const MIN_RECORD_BODY = 1 + TAG_LENGTH;
export const MAX_RECORD_BODY = 1 + MAX_RECORD_PAYLOAD + TAG_LENGTH;
const MAX_SEQ = (1n << 64n) - 1n;

export type LaneErrorCode =
  /** A record's tag did not verify: a changed byte, a wrong key, or a record out of order. */
  | 'tampered'
  /** A length outside 17..65,553, or a control record's payload over 4 KiB. */
  | 'too_big'
  /** The stream ended inside a record, or without CLOSE or EOF both ways. */
  | 'truncated'
  /** A record that opened but makes no sense (an EOF with a payload, a sequence number used up). */
  | 'bad_record'
  /** A type byte this version does not know. */
  | 'bad_type'
  /** Options a caller gave that are not what the API takes. */
  | 'bad_options'
  /** The native relay cannot be loaded here (see loadNativeLanes). */
  | 'unavailable'
  /** A system call failed (the message has the errno text). */
  | 'io';

export class LaneError extends Error {
  override name = 'LaneError';
  constructor(
    readonly code: LaneErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface LaneKeys {
  /** The key of the records this side sends (32 bytes). */
  send: Buffer;
  /** The key of the records this side receives (32 bytes). */
  receive: Buffer;
}

const INFO_CLIENT_TO_AGENT = 'hangar lane v1 client to agent';
const INFO_AGENT_TO_CLIENT = 'hangar lane v1 agent to client';

/** lane_no as the 8 big-endian bytes of the wire (and of the HKDF salt). */
export function encodeLaneNo(laneNo: bigint): Buffer {
  if (laneNo < 0n || laneNo > MAX_SEQ) throw new LaneError('bad_options', `lane_no must be 0..2^64-1, got ${laneNo}`);
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(laneNo);
  return out;
}

/** The 32 bytes a client writes first: preface, grant_id, lane_no. */
export function laneHeader(grantId: Uint8Array, laneNo: bigint): Buffer {
  if (grantId.length !== GRANT_ID_LENGTH) {
    throw new LaneError('bad_options', `grant_id must be ${GRANT_ID_LENGTH} bytes, got ${grantId.length}`);
  }
  return Buffer.concat([LANE_PREFACE, grantId, encodeLaneNo(laneNo)]);
}

/**
 * Both directions' keys of one lane, seen from `role`: HKDF-SHA256(secret, grant_id ‖ lane_no,
 * "hangar lane v1 <direction>"). The client's send key is the agent's receive key and back.
 */
export function deriveLaneKeys(
  secret: Uint8Array,
  grantId: Uint8Array,
  laneNo: bigint,
  role: 'client' | 'agent',
): LaneKeys {
  if (secret.length !== 32) throw new LaneError('bad_options', `secret must be 32 bytes, got ${secret.length}`);
  if (grantId.length !== GRANT_ID_LENGTH) {
    throw new LaneError('bad_options', `grant_id must be ${GRANT_ID_LENGTH} bytes, got ${grantId.length}`);
  }
  const salt = Buffer.concat([grantId, encodeLaneNo(laneNo)]);
  const key = (info: string) => Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
  const clientToAgent = key(INFO_CLIENT_TO_AGENT);
  const agentToClient = key(INFO_AGENT_TO_CLIENT);
  return role === 'client'
    ? { send: clientToAgent, receive: agentToClient }
    : { send: agentToClient, receive: clientToAgent };
}

function nonce(seq: bigint): Buffer {
  const out = Buffer.alloc(12);
  out.writeBigUInt64BE(seq, 4);
  return out;
}

function checkKey(key: Uint8Array): void {
  if (key.length !== 32) throw new LaneError('bad_options', `a lane key is 32 bytes, got ${key.length}`);
}

function checkSeq(seq: bigint): void {
  if (seq < 0n || seq > MAX_SEQ) throw new LaneError('bad_record', `seq must be 0..2^64-1, got ${seq}`);
}

/** The most payload a record of `type` may carry. */
export function maxPayload(type: RecordType): number {
  switch (type) {
    case RecordType.Data:
      return MAX_RECORD_PAYLOAD;
    case RecordType.Eof:
      return 0;
    default:
      return MAX_CONTROL_PAYLOAD;
  }
}

function knownType(type: number): type is RecordType {
  return Number.isInteger(type) && type >= RecordType.Data && type <= RecordType.Refuse;
}

/** One record, length and sealed body, ready to write: record number `seq` of its direction. */
export function sealRecord(key: Uint8Array, seq: bigint, type: RecordType, payload: Uint8Array): Buffer {
  checkKey(key);
  checkSeq(seq);
  if (!knownType(type)) throw new LaneError('bad_type', `unknown record type ${String(type)}`);
  const limit = maxPayload(type);
  if (payload.length > limit) {
    throw new LaneError(
      'too_big',
      `a ${RecordType[type]} record carries at most ${limit} bytes, got ${payload.length}`,
    );
  }
  const bodyLength = 1 + payload.length + TAG_LENGTH;
  const out = Buffer.allocUnsafe(LENGTH_BYTES + bodyLength);
  out.writeUInt32BE(bodyLength, 0);
  const cipher = createCipheriv('aes-256-gcm', key, nonce(seq));
  cipher.setAAD(out.subarray(0, LENGTH_BYTES));
  let at = LENGTH_BYTES;
  at += cipher.update(Buffer.of(type)).copy(out, at);
  at += cipher.update(payload).copy(out, at);
  at += cipher.final().copy(out, at);
  cipher.getAuthTag().copy(out, at);
  return out;
}

export interface LaneRecord {
  type: RecordType;
  payload: Buffer;
}

/**
 * Opens one direction's records from chunks of a byte stream, in order. Any record that does not
 * open throws, and so does every call after it: nothing after a bad record is delivered.
 */
export class RecordReader {
  readonly #key: Buffer;
  #seq: bigint;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #failed: LaneError | undefined;

  constructor(key: Uint8Array, seq = 0n) {
    checkKey(key);
    checkSeq(seq);
    this.#key = Buffer.from(key);
    this.#seq = seq;
  }

  /** The sequence number of the next record expected. */
  get seq(): bigint {
    return this.#seq;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.#buffered += chunk.length;
  }

  /** The next whole record, or undefined until more bytes are pushed. Throws LaneError. */
  next(): LaneRecord | undefined {
    if (this.#failed) throw this.#failed;
    if (this.#buffered < LENGTH_BYTES) return undefined;
    const lengthBytes = this.#peek(LENGTH_BYTES);
    const bodyLength = lengthBytes.readUInt32BE(0);
    if (bodyLength < MIN_RECORD_BODY || bodyLength > MAX_RECORD_BODY) {
      return this.#fail('too_big', `record length ${bodyLength} is outside ${MIN_RECORD_BODY}..${MAX_RECORD_BODY}`);
    }
    if (this.#buffered < LENGTH_BYTES + bodyLength) return undefined;
    const whole = this.#take(LENGTH_BYTES + bodyLength);
    if (this.#seq > MAX_SEQ) return this.#fail('bad_record', 'the sequence numbers of this direction are used up');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce(this.#seq));
    decipher.setAAD(whole.subarray(0, LENGTH_BYTES));
    decipher.setAuthTag(whole.subarray(whole.length - TAG_LENGTH));
    let plain: Buffer;
    try {
      plain = Buffer.concat([
        decipher.update(whole.subarray(LENGTH_BYTES, whole.length - TAG_LENGTH)),
        decipher.final(),
      ]);
    } catch {
      return this.#fail('tampered', `record ${this.#seq} does not open (changed, out of order or the wrong key)`);
    }
    const type = plain[0]!;
    if (!knownType(type)) return this.#fail('bad_type', `record ${this.#seq} has unknown type ${type}`);
    const payload = plain.subarray(1);
    if (payload.length > maxPayload(type)) {
      return this.#fail(
        type === RecordType.Eof ? 'bad_record' : 'too_big',
        `record ${this.#seq}: a ${RecordType[type]} record carries at most ${maxPayload(type)} bytes, got ${payload.length}`,
      );
    }
    this.#seq += 1n;
    return { type, payload };
  }

  /** The bytes pushed and not yet taken as records (to hand to a relay with `seq`). */
  rest(): Buffer {
    const out = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = this.#buffered === 0 ? [] : [out];
    return out;
  }

  /** Says the stream ended: throws 'truncated' if it ended inside a record. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#buffered > 0) {
      this.#fail('truncated', `the stream ended ${this.#buffered} bytes into record ${this.#seq}`);
    }
  }

  #fail(code: LaneErrorCode, message: string): never {
    this.#failed = new LaneError(code, message);
    this.#chunks = [];
    this.#buffered = 0;
    throw this.#failed;
  }

  #peek(length: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= length) return first.subarray(0, length);
    const joined = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [joined];
    return joined.subarray(0, length);
  }

  #take(length: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length < length) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
    const joined = this.#chunks[0]!;
    const out = joined.subarray(0, length);
    if (joined.length === length) this.#chunks.shift();
    else this.#chunks[0] = joined.subarray(length);
    this.#buffered -= length;
    return out;
  }
}
