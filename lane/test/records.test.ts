/**
 * The lane record codec (lane/PROTOCOL.md, "Wire") through @hangar/lane's public API: keys against
 * an independent HKDF, round trips, each way a record can be refused, and any chunking of a stream.
 */
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LANE_PREFACE,
  LaneError,
  MAX_RECORD_PAYLOAD,
  RecordReader,
  RecordType,
  deriveLaneKeys,
  laneHeader,
  sealRecord,
  type LaneRecord,
} from '@hangar/lane';

const key = randomBytes(32);

function readAll(reader: RecordReader): LaneRecord[] {
  const out: LaneRecord[] = [];
  for (let record = reader.next(); record; record = reader.next()) out.push(record);
  return out;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof LaneError) return error.code;
    throw error;
  }
  return undefined;
}

describe('lane keys', () => {
  it('are HKDF-SHA256 of the secret, salted with grant_id and lane_no, one per direction', () => {
    const secret = randomBytes(32);
    const grantId = randomBytes(16);
    const laneNo = 0x0102030405060708n;
    const salt = Buffer.concat([grantId, Buffer.from('0102030405060708', 'hex')]);
    const expected = (info: string) => Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
    const client = deriveLaneKeys(secret, grantId, laneNo, 'client');
    const agent = deriveLaneKeys(secret, grantId, laneNo, 'agent');
    expect(client.send).toEqual(expected('hangar lane v1 client to agent'));
    expect(client.receive).toEqual(expected('hangar lane v1 agent to client'));
    expect(agent.send).toEqual(client.receive);
    expect(agent.receive).toEqual(client.send);
    expect(deriveLaneKeys(secret, grantId, laneNo + 1n, 'client').send).not.toEqual(client.send);
  });

  it('the header is the preface, grant_id and lane_no big-endian', () => {
    const grantId = randomBytes(16);
    const header = laneHeader(grantId, 258n);
    expect(LANE_PREFACE.toString('latin1')).toBe('HGLANE/1');
    expect(header).toEqual(Buffer.concat([LANE_PREFACE, grantId, Buffer.from('0000000000000102', 'hex')]));
  });
});

describe('records', () => {
  it('are AES-256-GCM with nonce 0000‖seq and the length as AAD, as an independent sealer makes them', () => {
    const payload = Buffer.from('hello');
    const length = Buffer.from([0, 0, 0, 1 + payload.length + 16]);
    const nonce = Buffer.concat([Buffer.alloc(4), Buffer.from('0000000000000007', 'hex')]);
    const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(length);
    const body = Buffer.concat([cipher.update(Buffer.from([RecordType.Data, ...payload])), cipher.final()]);
    const independent = Buffer.concat([length, body, cipher.getAuthTag()]);
    expect(sealRecord(key, 7n, RecordType.Data, payload)).toEqual(independent);
  });

  it('round trip, every type, from empty to 64 KiB', () => {
    const records: LaneRecord[] = [
      { type: RecordType.Hello, payload: Buffer.from('{"purpose":"preview","port":3000}') },
      { type: RecordType.Data, payload: Buffer.alloc(0) },
      { type: RecordType.Data, payload: randomBytes(MAX_RECORD_PAYLOAD) },
      { type: RecordType.Eof, payload: Buffer.alloc(0) },
      { type: RecordType.Accept, payload: Buffer.from('{}') },
      { type: RecordType.Refuse, payload: Buffer.from('{"code":"x","message":"y"}') },
      { type: RecordType.Close, payload: Buffer.from('{"code":"ended"}') },
    ];
    const stream = Buffer.concat(
      records.map((record, seq) => sealRecord(key, BigInt(seq), record.type, record.payload)),
    );
    const reader = new RecordReader(key);
    reader.push(stream);
    expect(readAll(reader)).toEqual(records);
    expect(reader.seq).toBe(BigInt(records.length));
    expect(reader.rest().length).toBe(0);
    reader.end();
  });

  it('a changed byte anywhere is refused as tampered, and so is everything after it', () => {
    const record = sealRecord(key, 0n, RecordType.Data, Buffer.from('some bytes of a terminal'));
    for (let at = 4; at < record.length; at++) {
      const changed = Buffer.from(record);
      changed[at]! ^= 0x01;
      const reader = new RecordReader(key);
      reader.push(Buffer.concat([changed, sealRecord(key, 1n, RecordType.Data, Buffer.from('after'))]));
      expect(codeOf(() => reader.next())).toBe('tampered');
      expect(codeOf(() => reader.next())).toBe('tampered');
    }
  });

  it('a changed length byte is refused (the length is authenticated)', () => {
    const record = sealRecord(key, 0n, RecordType.Data, Buffer.alloc(100));
    const longer = Buffer.concat([record, Buffer.alloc(1)]);
    longer.writeUInt32BE(record.readUInt32BE(0) + 1, 0);
    const reader = new RecordReader(key);
    reader.push(longer);
    expect(codeOf(() => reader.next())).toBe('tampered');
  });

  it('a record under the wrong seq, or two swapped, do not open', () => {
    const wrongSeq = new RecordReader(key);
    wrongSeq.push(sealRecord(key, 1n, RecordType.Data, Buffer.from('x')));
    expect(codeOf(() => wrongSeq.next())).toBe('tampered');

    const swapped = new RecordReader(key);
    swapped.push(sealRecord(key, 1n, RecordType.Data, Buffer.from('second')));
    swapped.push(sealRecord(key, 0n, RecordType.Data, Buffer.from('first')));
    expect(codeOf(() => swapped.next())).toBe('tampered');

    const otherKey = new RecordReader(randomBytes(32));
    otherKey.push(sealRecord(key, 0n, RecordType.Data, Buffer.from('x')));
    expect(codeOf(() => otherKey.next())).toBe('tampered');
  });

  it('a length outside 17..65,553 is refused before any of the body arrives', () => {
    for (const length of [0, 16, 65_554, 0xffffffff]) {
      const reader = new RecordReader(key);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(length, 0);
      reader.push(header);
      expect(codeOf(() => reader.next())).toBe('too_big');
    }
    expect(codeOf(() => sealRecord(key, 0n, RecordType.Data, Buffer.alloc(MAX_RECORD_PAYLOAD + 1)))).toBe('too_big');
  });

  it('a control record over 4 KiB, an EOF with a payload and an unknown type are refused', () => {
    const sealRaw = (plain: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(plain.length + 16, 0);
      const cipher = createCipheriv('aes-256-gcm', key, Buffer.alloc(12)).setAAD(length);
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return Buffer.concat([length, body, cipher.getAuthTag()]);
    };
    const cases: [Buffer, string][] = [
      [Buffer.concat([Buffer.of(RecordType.Close), Buffer.alloc(4097)]), 'too_big'],
      [Buffer.concat([Buffer.of(RecordType.Hello), Buffer.alloc(4097)]), 'too_big'],
      [Buffer.of(RecordType.Eof, 0), 'bad_record'],
      [Buffer.of(6, 1, 2), 'bad_type'],
      [Buffer.of(255), 'bad_type'],
    ];
    for (const [plain, code] of cases) {
      const reader = new RecordReader(key);
      reader.push(sealRaw(plain));
      expect(codeOf(() => reader.next())).toBe(code);
    }
    expect(codeOf(() => sealRecord(key, 0n, RecordType.Close, Buffer.alloc(4097)))).toBe('too_big');
    expect(codeOf(() => sealRecord(key, 0n, 9 as RecordType, Buffer.alloc(0)))).toBe('bad_type');
  });

  it('a stream that ends inside a record is truncated; rest() hands the cut record on', () => {
    const record = sealRecord(key, 0n, RecordType.Data, Buffer.from('cut short'));
    const reader = new RecordReader(key);
    reader.push(record.subarray(0, 10));
    expect(reader.next()).toBeUndefined();
    expect(reader.rest()).toEqual(record.subarray(0, 10));
    expect(codeOf(() => reader.end())).toBe('truncated');
  });

  it('any chunking of a record stream yields the same records, and rest() is what follows', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(RecordType.Data, RecordType.Eof, RecordType.Close),
            fc.uint8Array({ maxLength: 300 }),
          ),
          {
            maxLength: 12,
          },
        ),
        fc.array(fc.integer({ min: 0, max: 4000 }), { maxLength: 20 }),
        fc.integer({ min: 0, max: 30 }),
        (specs, cuts, tail) => {
          const records = specs.map(([type, payload]) => ({
            type,
            payload: Buffer.from(type === RecordType.Eof ? new Uint8Array(0) : payload),
          }));
          const sealed = records.map((record, seq) => sealRecord(key, BigInt(seq), record.type, record.payload));
          const next = sealRecord(key, BigInt(records.length), RecordType.Data, Buffer.alloc(40));
          const stream = Buffer.concat([...sealed, next.subarray(0, Math.min(tail, next.length - 1))]);
          const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
          const reader = new RecordReader(key);
          const got: LaneRecord[] = [];
          let from = 0;
          for (const point of [...points, stream.length]) {
            reader.push(stream.subarray(from, point));
            from = point;
            got.push(...readAll(reader));
          }
          expect(got).toEqual(records);
          expect(reader.seq).toBe(BigInt(records.length));
          expect(reader.rest()).toEqual(next.subarray(0, Math.min(tail, next.length - 1)));
        },
      ),
      { numRuns: 200 },
    );
  });
});
