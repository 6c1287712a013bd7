import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeFrame,
  encodeLengthPrefixed,
  LeasedReads,
  Mux,
  ReadBufferPool,
  spliceSocket,
  wrapByteStream,
  type ByteSocket,
  type LinkStream,
} from '@hangar/shared';
import { NullSocket } from './support/null-socket.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** The browser's socket: keeps what it is given, as given, until the test finishes the writes. */
class BrowserSocket extends EventEmitter implements ByteSocket {
  pending: { data: Uint8Array; done?: () => void }[] = [];
  write(data: Uint8Array, done?: () => void): boolean {
    this.pending.push({ data, done });
    return true;
  }
  end(): void {}
  destroy(): void {}
  pause(): void {}
  resume(): void {}
}

const READ_BYTES = 16 * 1024;

/** A pool that remembers every buffer it handed out. */
class CountingPool extends ReadBufferPool {
  readonly handed = new Set<ArrayBufferLike>();
  override take(): Uint8Array {
    const buffer = super.take();
    this.handed.add(buffer.buffer);
    return buffer;
  }
}
const WINDOW = 8 * 1024 * 1024;

/**
 * A client mux on a byte-stream transport whose socket reads land in pooled buffers, one stream
 * open on it, and a way to make the peer's data frames arrive in reads of READ_BYTES, as Node's
 * onread would hand them over. Counts the distinct buffers the reads went into.
 */
function linkWithPooledReads(): {
  stream: LinkStream;
  /** Returns the buffers the reads went into. */
  receive(payloads: Uint8Array[]): Uint8Array[];
  buffers: Set<Uint8Array>;
  pool: CountingPool;
} {
  const pool = new CountingPool(READ_BYTES, 32);
  const reads = new LeasedReads(pool);
  const transport = wrapByteStream(new NullSocket(), { later: setImmediate }, reads);
  const mux = new Mux(transport, { role: 'client' });
  cleanups.push(() => mux.dispose());
  const stream = mux.openStream({ window: WINDOW });
  let offset = 0;
  const buffers = new Set<Uint8Array>();
  return {
    stream,
    buffers,
    pool,
    receive(payloads) {
      const wire = Buffer.concat(
        payloads.map((payload) => {
          const frame = encodeFrame({ type: 'data', stream: stream.id, offset, payload });
          offset += payload.length;
          return encodeLengthPrefixed(frame);
        }),
      );
      const used: Uint8Array[] = [];
      for (let at = 0; at < wire.length; at += READ_BYTES) {
        const buffer = reads.onread.buffer();
        buffers.add(buffer);
        used.push(buffer);
        const chunk = wire.subarray(at, Math.min(at + READ_BYTES, wire.length));
        buffer.set(chunk);
        reads.onread.callback(chunk.length, buffer);
      }
      return used;
    },
  };
}

/** `count` payloads of `size` bytes, each filled with its own number. */
const numbered = (count: number, size: number, from = 0) =>
  Array.from({ length: count }, (_, i) => new Uint8Array(size).fill((from + i) % 251));

describe('link reads into pooled buffers', () => {
  it("a spliced preview's bytes reach the browser intact, and the link's read buffers go round once the browser's socket has written them", () => {
    const link = linkWithPooledReads();
    const browser = new BrowserSocket();
    void spliceSocket(browser, link.stream);

    // 8 MiB in frames of 64 KiB (each comes in pieces, views of the reads); the browser's
    // writes finish after each batch, a few reads' worth late.
    const payloadBytes = 64 * 1024;
    const batches = 32;
    const perBatch = 4;
    let expected = 0;
    for (let batch = 0; batch < batches; batch++) {
      link.receive(numbered(perBatch, payloadBytes, batch * perBatch));
      for (const { data, done } of browser.pending.splice(0)) {
        // A buffer read into again while the browser's socket still had a view of it shows here.
        const first = expected;
        if (!data.every((byte, i) => byte === Math.floor((first + i) / payloadBytes) % 251)) {
          throw new Error(`bytes ${first}..${first + data.length} changed before the browser's socket wrote them`);
        }
        expected += data.length;
        done?.();
      }
    }
    expect(expected).toBe(batches * perBatch * payloadBytes);
    // 512 reads of 16 KiB went into a batch's worth of buffers and a few, not one each.
    expect(link.buffers.size).toBeLessThanOrEqual((perBatch * payloadBytes) / READ_BYTES + 4);
  });

  it("a piece held for the end of its task, or written corked, keeps its read buffer until the browser's socket has written it", () => {
    const link = linkWithPooledReads();
    // A socket that corks: the first piece of a task waits for the task's end (spliceSocket's
    // `later`), the next ones are written corked; this socket keeps all of them until the test
    // finishes the writes, after the task.
    const browser = Object.assign(new BrowserSocket(), { cork() {}, uncork() {} });
    const endOfTask: Array<() => void> = [];
    void spliceSocket(browser, link.stream, { later: (fn) => endOfTask.push(fn) });
    // Each byte is its offset in the stream mod 251: a read's bytes landing in another's buffer show.
    const payloadBytes = 64 * 1024;
    const counting = (from: number) => Uint8Array.from({ length: payloadBytes }, (_, i) => (from + i) % 251);
    let sent = 0;
    let expected = 0;
    for (let batch = 0; batch < 16; batch++) {
      link.receive(Array.from({ length: 4 }, () => counting((sent += payloadBytes) - payloadBytes)));
      for (const fn of endOfTask.splice(0)) fn();
      for (const { data, done } of browser.pending.splice(0)) {
        const first = expected;
        if (!data.every((byte, i) => byte === (first + i) % 251)) {
          throw new Error(`bytes ${first}..${first + data.length} changed before the browser's socket wrote them`);
        }
        expected += data.length;
        done?.();
      }
    }
    expect(expected).toBe(16 * 4 * payloadBytes);
    expect(link.buffers.size).toBeLessThanOrEqual((4 * payloadBytes) / READ_BYTES + 4);
  });

  it("answers of a few KiB split across reads are put together in the pool's buffers, which go round once the browser's socket has written them", () => {
    const link = linkWithPooledReads();
    const browser = new BrowserSocket();
    void spliceSocket(browser, link.stream);
    // A preview's 4 KiB asset with its headers, 16 to a batch: three or four to a read, one
    // split across each read's end. Each byte is its offset in the stream mod 251.
    const answerBytes = 4300;
    let sent = 0;
    let expected = 0;
    let fresh = 0;
    for (let batch = 0; batch < 64; batch++) {
      link.receive(
        Array.from({ length: 16 }, () => {
          const from = sent;
          sent += answerBytes;
          return Uint8Array.from({ length: answerBytes }, (_, i) => (from + i) % 251);
        }),
      );
      for (const { data, done } of browser.pending.splice(0)) {
        const first = expected;
        if (!data.every((byte, i) => byte === (first + i) % 251)) {
          throw new Error(`bytes ${first}..${first + data.length} changed before the browser's socket wrote them`);
        }
        if (!link.pool.handed.has(data.buffer)) fresh++;
        expected += data.length;
        done?.();
      }
    }
    expect(expected).toBe(sent);
    // No answer in memory of its own (the small-read copies aside: none here), and a batch's
    // reads and answers put together went round: a few buffers for 1,024 answers.
    expect(fresh).toBe(0);
    expect(link.pool.handed.size).toBeLessThanOrEqual(2 * Math.ceil((16 * (answerBytes + 17 + 4)) / READ_BYTES) + 4);
  });

  it("a stream that releases its data on ack (a job log, an artifact) keeps each read's buffer until every byte of it is acked, then the buffer goes round", () => {
    const link = linkWithPooledReads();
    const { stream } = link;
    stream.autoAck = false;
    stream.releasesDataOnAck = true;
    // A file writer: keeps views of what it is given, writes them later, then acks up to there.
    const pending: { data: Uint8Array; end: number }[] = [];
    let leases = 0;
    stream.onData((data, offset, lease) => {
      if (lease) leases++;
      pending.push({ data, end: offset + data.length });
    });
    let written = 0;
    const write = (leave: number) => {
      while (pending.length > leave) {
        const { data, end } = pending.shift()!;
        const first = written;
        // A buffer read into again before its bytes were acked shows here.
        if (!data.every((byte, i) => byte === (first + i) % 251)) {
          throw new Error(`bytes ${first}..${end} changed before they were acked`);
        }
        written = end;
        stream.ack(end);
      }
    };
    // Big frames in pieces (views of 16 KiB reads), small ones whole inside a read or put together
    // in a pooled buffer: the acks land inside reads whose other bytes still wait to be written.
    let sent = 0;
    const counting = (size: number) => {
      const from = sent;
      sent += size;
      return Uint8Array.from({ length: size }, (_, i) => (from + i) % 251);
    };
    for (let batch = 0; batch < 48; batch++) {
      link.receive([counting(100 * 1024), counting(5000), counting(100 * 1024), counting(6000)]);
      // The last pieces wait for the next batch's reads (the writer is behind).
      write(3);
    }
    write(0);
    expect(written).toBe(sent);
    // The listener gets no lease: the stream holds it.
    expect(leases).toBe(0);
    // About 10 MiB in 16 KiB reads went into a few batches' worth of buffers, not one each.
    const perBatch = Math.ceil((2 * 100 * 1024 + 11000 + 4 * 21) / READ_BYTES);
    expect(link.buffers.size).toBeLessThanOrEqual(2 * perBatch + 2);
  });

  it('bytes of a stream that releases on ack stay intact after it closes with them unacked (a file write under way), and their buffers go round once acked', () => {
    const link = linkWithPooledReads();
    const { stream } = link;
    stream.autoAck = false;
    stream.releasesDataOnAck = true;
    const kept: { data: Uint8Array; offset: number }[] = [];
    stream.onData((data, offset) => kept.push({ data, offset }));
    let sent = 0;
    const counting = (size: number) => {
      const from = sent;
      sent += size;
      return Uint8Array.from({ length: size }, (_, i) => (from + i) % 251);
    };
    link.receive([counting(100 * 1024), counting(100 * 1024)]);
    // The first half is written out; the rest is still being written when the link drops it.
    const half = kept.findIndex(({ offset }) => offset >= 100 * 1024);
    stream.ack(kept[half]!.offset);
    stream.close({ code: 'cancelled', message: 'test' });
    // More reads (for a stream that is gone) take buffers from the pool and fill them.
    link.receive([new Uint8Array(300 * 1024).fill(7)]);
    const changed = kept
      .slice(half)
      .filter(({ data, offset }) => !data.every((byte, i) => byte === (offset + i) % 251));
    expect(changed.map(({ offset }) => offset)).toEqual([]);
    // The last write finishes after the end: its ack sends nothing, and its buffers go round.
    const unacked = new Set(kept.slice(half).map(({ data }) => data.buffer));
    stream.ack(sent);
    const next = link.receive([new Uint8Array(64 * 1024).fill(8)]);
    expect(next.filter((buffer) => unacked.has(buffer.buffer)).length).toBeGreaterThan(0);
  });

  it('a small read is copied out of its buffer, which the next read uses again', () => {
    const link = linkWithPooledReads();
    const kept: Uint8Array[] = [];
    link.stream.onData((data) => kept.push(data));
    link.receive(numbered(1, 100));
    link.receive(numbered(1, 100, 1));
    expect(link.buffers.size).toBe(1);
    expect(kept.map((data) => [...new Set(data)])).toEqual([[0], [1]]);
  });

  it('bytes a stream listener keeps stay intact: their read buffer never goes back to the pool', () => {
    const link = linkWithPooledReads();
    const kept: Uint8Array[] = [];
    // Views, not copies: a listener may keep what it is given for as long as it likes.
    link.stream.onData((data) => kept.push(data));
    // Small frames come whole inside a read, big ones (from 64 KiB) in pieces: views of the reads.
    const payloads = [...numbered(40, 1000), ...numbered(4, 100 * 1024, 40), ...numbered(40, 1000, 44)];
    link.receive(payloads.slice(0, 42));
    link.receive(payloads.slice(42));
    const sizes = payloads.map((p) => p.length);
    const all = Buffer.concat(kept);
    expect(all.length).toBe(sizes.reduce((a, b) => a + b));
    let at = 0;
    const intact = payloads.every((payload) => Buffer.compare(payload, all.subarray(at, (at += payload.length))) === 0);
    expect(intact).toBe(true);
    // Every read went into a buffer of its own: none came back to the pool.
    const reads = (n: number) => Math.ceil(n / READ_BYTES);
    const wire = (list: Uint8Array[]) => list.reduce((n, p) => n + 4 + 13 + p.length, 0);
    expect(link.buffers.size).toBe(reads(wire(payloads.slice(0, 42))) + reads(wire(payloads.slice(42))));
  });
});
