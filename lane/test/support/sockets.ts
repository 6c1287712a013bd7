/** Loopback TCP pairs, and a test's own end of a lane, for the native relay's tests. */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, beforeAll } from 'vitest';
import {
  RecordReader,
  RecordType,
  loadNativeLanes,
  sealRecord,
  type LaneKeys,
  type LaneRecord,
  type NativeLanes,
  type Relay,
} from '@hangar/lane';

/**
 * A test file's native relay: `onLoaded` gets it before the tests (a file fails at once without a
 * built addon); the sockets and relays a test puts in the lists are closed after it. `pair()` is a
 * loopback TCP pair, listed.
 */
export function useNativeRelay(onLoaded: (lanes: NativeLanes) => void): {
  sockets: Socket[];
  relays: Relay[];
  pair: () => Promise<[Socket, Socket]>;
} {
  const sockets: Socket[] = [];
  const relays: Relay[] = [];
  beforeAll(() => {
    const loaded = loadNativeLanes();
    if ('unavailable' in loaded)
      throw new Error(`the native relay must be built for these tests: ${loaded.unavailable}`);
    onLoaded(loaded);
  });
  afterEach(async () => {
    for (const relay of relays.splice(0)) relay.close();
    await Promise.all(sockets.splice(0).map(closed));
  });
  const pair = async (): Promise<[Socket, Socket]> => {
    const ends = await tcpPair();
    sockets.push(...ends);
    return ends;
  };
  return { sockets, relays, pair };
}

/** Two connected ends of one loopback TCP connection (half-open allowed: an end is not answered by one). */
export async function tcpPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect({ port: address.port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const other = await accepted;
  server.close();
  return [client, other];
}

/** Resolves when the socket is closed (destroying it if it is not yet). */
export function closed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.destroy();
  });
}

/** Everything a socket says until it ends (an 'end' or an error). */
export function readUntilEnd(socket: Socket): Promise<{ data: Buffer; error: Error | undefined }> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    socket.once('end', () => resolve({ data: Buffer.concat(chunks), error: undefined }));
    socket.once('error', (error) => resolve({ data: Buffer.concat(chunks), error }));
  });
}

/** Bytes a socket says until `count` have come. */
export function readBytes(socket: Socket, count: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= count) {
        socket.off('data', onData);
        socket.pause();
        const all = Buffer.concat(chunks);
        if (all.length > count) socket.unshift(all.subarray(count));
        resolve(all.subarray(0, count));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

/** Writes `total` random bytes in chunks of random sizes (with backpressure), ends the socket, returns their sha256. */
export async function sendRandom(socket: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let left = total;
  while (left > 0) {
    const chunk = randomBytes(Math.min(left, 1 + Math.floor(Math.random() * 200_000)));
    hash.update(chunk);
    left -= chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
  return hash.digest('hex');
}

/** The sha256 and length of everything a socket says until its end. */
export function hashUntilEnd(socket: Socket): Promise<{ hash: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  socket.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    length += chunk.length;
  });
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve({ hash: hash.digest('hex'), length }));
    socket.once('error', reject);
  });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * The test's own end of a lane, written with sealRecord and read with RecordReader: the other
 * side of a native relay, speaking the protocol in TypeScript.
 */
export class PeerLane {
  readonly #reader: RecordReader;
  readonly #records: LaneRecord[] = [];
  readonly #waiters: (() => void)[] = [];
  #sendSeq = 0n;
  #ended = false;
  error: Error | undefined;

  constructor(
    readonly socket: Socket,
    readonly keys: LaneKeys,
  ) {
    this.#reader = new RecordReader(keys.receive);
    socket.on('data', (chunk: Buffer) => {
      this.#reader.push(chunk);
      for (let record = this.#reader.next(); record; record = this.#reader.next()) this.#records.push(record);
      this.#wake();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.#ended = true;
      this.#wake();
    });
  }

  /** Seals and writes one record. */
  send(type: RecordType, payload: Uint8Array = new Uint8Array(0)): Buffer {
    const record = sealRecord(this.keys.send, this.#sendSeq++, type, payload);
    this.socket.write(record);
    return record;
  }

  /** Counts `count` records as sent another way (fromNet). */
  skip(count: number): void {
    this.#sendSeq += BigInt(count);
  }

  /** The next record sealed, without writing it (for tests that write it their own way). */
  seal(type: RecordType, payload: Uint8Array = new Uint8Array(0)): Buffer {
    return sealRecord(this.keys.send, this.#sendSeq++, type, payload);
  }

  /** The next record the relay sent, or undefined at the connection's end. */
  async next(): Promise<LaneRecord | undefined> {
    while (this.#records.length === 0 && !this.#ended)
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.#records.shift();
  }

  /** DATA payloads until a record of another type (returned too) or the end. */
  async dataUntil(): Promise<{ data: Buffer; then: LaneRecord | undefined }> {
    const chunks: Buffer[] = [];
    for (;;) {
      const record = await this.next();
      if (record?.type !== RecordType.Data) return { data: Buffer.concat(chunks), then: record };
      chunks.push(record.payload);
    }
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
