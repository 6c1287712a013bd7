import {
  BULK_FRAME_BYTES,
  BULK_STREAM_WINDOW,
  LeasedReads,
  Mux,
  ReadBufferPool,
  type CloseReason,
} from '@hangar/shared';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../../../test/support/processes.js';
import { UiStream } from '../../src/api/ui-stream.js';
import { SocketFrameTransport } from '../../src/door/socket-transport.js';
import { waitFor } from './ui-client.js';

const CHUNK = 16 * 1024;
const WINDOW = 256 * 1024;

/**
 * A link's read buffers as a log follower gets them: a piece is lent until consumed(), and its
 * buffer is then read into again at once (overwritten), as a pooled read buffer would be.
 */
class ReusingPool {
  private free: Uint8Array[] = [];
  /** Bytes consumed, in order (the host is acked up to here). */
  consumedBytes = 0;
  fresh = 0;

  take(): Uint8Array {
    const buffer = this.free.pop();
    if (buffer) return buffer;
    this.fresh++;
    return new Uint8Array(CHUNK);
  }

  give(buffer: Uint8Array): void {
    buffer.fill(0xee);
    this.free.push(buffer);
  }
}

/** Piece `i` of the log: bytes that say where they are. */
function piece(buffer: Uint8Array, i: number): Uint8Array {
  for (let at = 0; at < buffer.length; at++) buffer[at] = (i * 7 + at) & 0xff;
  return buffer;
}

describe('UiStream over the door socket', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  /** The core's mux and the UI's (the hangar command's), over a real local socket as the door's. */
  async function door(reads?: LeasedReads): Promise<{ core: Mux; ui: Mux }> {
    const dir = tempDir('ui-stream');
    cleanup.push(() => removeDir(dir));
    const path = join(dir, 'door.sock');
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const client = reads ? connect({ path, onread: reads.onread }) : connect(path);
    const coreSocket = await accepted;
    const core = new Mux(new SocketFrameTransport(coreSocket), { role: 'agent' });
    const ui = new Mux(new SocketFrameTransport(client, [], undefined, reads), { role: 'client' });
    cleanup.push(() => {
      core.close();
      ui.close();
      client.destroy();
      coreSocket.destroy();
    });
    return { core, ui };
  }

  /** The UI's end: collects what arrives, acks as it reads unless `ackByHand`. */
  function uiEnd(ui: Mux, ackByHand = false) {
    const stream = ui.openStream({ window: WINDOW });
    if (ackByHand) stream.autoAck = false;
    const parts: Uint8Array[] = [];
    let received = 0;
    stream.onData((data) => {
      parts.push(data.slice());
      received += data.length;
    });
    const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
    return { stream, closed, bytes: () => Buffer.concat(parts), received: () => received };
  }

  function expected(pieces: number): Buffer {
    return Buffer.concat(Array.from({ length: pieces }, (_, i) => piece(new Uint8Array(CHUNK), i)));
  }

  /** Writes `pieces` lent pieces, each as soon as the pool has a buffer (a follower as fast as the host). */
  async function writeLent(stream: UiStream, pool: ReusingPool, pieces: number, stopAt?: () => boolean) {
    let inFlight = 0;
    let wake = () => undefined as void;
    for (let i = 0; i < pieces; i++) {
      if (stopAt?.()) return i;
      while (inFlight * CHUNK >= WINDOW * 2) await new Promise<void>((resolve) => (wake = resolve));
      const buffer = piece(pool.take(), i);
      inFlight++;
      stream.write(
        buffer,
        () => {
          pool.consumedBytes += CHUNK;
          pool.give(buffer);
          inFlight--;
          wake();
        },
        { lend: true },
      );
    }
    return pieces;
  }

  it('delivers lent bytes byte for byte while their buffers go round, also when it ends with bytes queued', async () => {
    const { core, ui } = await door();
    const reader = uiEnd(ui);
    // A job log's frames (BULK_FRAME_BYTES).
    const stream = new UiStream(core, reader.stream.id, { window: WINDOW, maxFrameBytes: 256 * 1024 });
    stream.open();
    const pool = new ReusingPool();
    const pieces = 200;
    await writeLent(stream, pool, pieces);
    // The end comes right behind the last pieces (a log's end): up to two windows still queued.
    stream.end({ code: 'log_end', message: 'the attempt ended' });
    expect((await reader.closed).code).toBe('log_end');
    expect(reader.received()).toBe(pieces * CHUNK);
    expect(reader.bytes().equals(expected(pieces))).toBe(true);
    // The buffers went round (not one per piece), and what was never acked was never given back.
    expect(pool.fresh).toBeLessThan(pieces / 2);
    expect(pool.consumedBytes).toBeLessThan(pieces * CHUNK);
  });

  it('a UI reading into pooled buffers (the hangar command) keeps the bytes it has not acked intact while buffers go round', async () => {
    class CountingPool extends ReadBufferPool {
      private readonly seen = new Set<Uint8Array>();
      override take(): Uint8Array {
        const buffer = super.take();
        this.seen.add(buffer);
        return buffer;
      }
      get fresh(): number {
        return this.seen.size;
      }
    }
    const readPool = new CountingPool(64 * 1024, 64);
    const { core, ui } = await door(new LeasedReads(readPool));
    const stream = ui.openStream({ window: WINDOW });
    stream.autoAck = false;
    stream.releasesDataOnAck = true;
    // Views kept (not copied) until acked, a few pieces at a time, a turn later.
    const held: Uint8Array[] = [];
    const parts: Buffer[] = [];
    let received = 0;
    stream.onData((data) => {
      held.push(data);
      received += data.length;
      if (held.length === 1) {
        setImmediate(() => {
          parts.push(Buffer.concat(held.splice(0)));
          stream.ack(received);
        });
      }
    });
    const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
    const writer = new UiStream(core, stream.id, { window: WINDOW, maxFrameBytes: 256 * 1024 });
    writer.open();
    const pieces = 400;
    await writeLent(writer, new ReusingPool(), pieces);
    writer.end({ code: 'log_end', message: 'the attempt ended' });
    expect((await closed).code).toBe('log_end');
    await waitFor(() => held.length === 0, 'the last pieces');
    expect(Buffer.concat(parts).equals(expected(pieces))).toBe(true);
    // 6.4 MB came in far fewer buffers than reads of it.
    expect(readPool.fresh).toBeLessThan(32);
  });

  it('a UI that stops reading while a log trickles in: the core holds about the bytes, not a gathering buffer per line', async () => {
    const { core, ui } = await door();
    // `hangar logs --follow | less`, paused: nothing is acked, the host goes on up to its window.
    const reader = uiEnd(ui, true);
    const stream = new UiStream(core, reader.stream.id, {
      window: BULK_STREAM_WINDOW,
      maxFrameBytes: BULK_FRAME_BYTES,
    });
    stream.open();
    const before = process.memoryUsage().arrayBuffers;
    const lines = 1000;
    // A job printing a line now and then: each comes in its own turn of the event loop.
    for (let i = 0; i < lines; i++) {
      stream.write(Buffer.from(`line ${i}`.padEnd(99) + '\n'), () => undefined, { lend: true });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => reader.received() === lines * 100, 'the lines');
    // 100 kB of lines; a 256 KiB buffer kept per line until acked would be 256 MiB.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('a short log that ended before the stream opened (its answer still on the way) arrives whole before the end', async () => {
    const { core, ui } = await door();
    const reader = uiEnd(ui);
    const stream = new UiStream(core, reader.stream.id, { window: WINDOW, maxFrameBytes: 256 * 1024 });
    const pool = new ReusingPool();
    const pieces = 3;
    // The host's bytes and the log's end, before open() (jobs.logs opens once it has answered).
    await writeLent(stream, pool, pieces);
    stream.end({ code: 'log_end', message: 'end of the log so far' });
    stream.open();
    expect((await reader.closed).code).toBe('log_end');
    expect(reader.bytes().equals(expected(pieces))).toBe(true);
  });

  it('a UI that goes away mid-log: what it acked is consumed, what it did not stays lent', async () => {
    const { core, ui } = await door();
    const reader = uiEnd(ui, true);
    const stream = new UiStream(core, reader.stream.id, { window: WINDOW });
    stream.open();
    const gone = new Promise<void>((resolve) => stream.onGone(() => resolve()));
    const pool = new ReusingPool();
    const writing = writeLent(stream, pool, 1000, () => pool.consumedBytes >= 3 * WINDOW);
    // The UI reads and acks 3 windows, piece by piece, then closes the stream.
    let acked = 0;
    while (acked < 3 * WINDOW) {
      await waitFor(() => reader.received() >= acked + CHUNK, 'the next piece');
      acked += CHUNK;
      reader.stream.ack(acked);
    }
    await waitFor(() => pool.consumedBytes === acked, 'the acked pieces consumed');
    const received = reader.received();
    reader.stream.close({ code: 'closed', message: 'the reader went away' });
    await gone;
    const written = await writing;
    // A copied write after the end is consumed at once: nobody reads.
    let late = false;
    stream.write(new Uint8Array(10), () => (late = true));
    expect(late).toBe(true);
    expect(pool.consumedBytes).toBe(acked);
    expect(written * CHUNK).toBeGreaterThan(acked);
    expect(reader.bytes().equals(expected(written).subarray(0, received))).toBe(true);
  });

  it('copied writes (a terminal) are consumed when the stream closes, acked or not', async () => {
    const { core, ui } = await door();
    const reader = uiEnd(ui, true);
    const stream = new UiStream(core, reader.stream.id);
    stream.open();
    let consumed = 0;
    const buffer = new Uint8Array(1000).fill(1);
    stream.write(buffer, () => consumed++);
    // The caller may reuse its buffer: the stream has its own copy.
    buffer.fill(2);
    await waitFor(() => reader.received() === 1000, 'the write');
    expect(reader.bytes().every((byte) => byte === 1)).toBe(true);
    expect(consumed).toBe(0);
    reader.stream.close();
    await waitFor(() => consumed === 1, 'consumed on close');
  });
});
