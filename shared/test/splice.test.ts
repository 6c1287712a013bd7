import { EventEmitter, once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  afterThisTask,
  FRAME_TYPE,
  HandleWrites,
  PREVIEW_EOF,
  PooledReads,
  ReadBufferPool,
  SPLICE_ACK_DELAY_MS,
  spliceSocket,
  type ByteSocket,
  type LinkStream,
} from '@hangar/shared';
import { connectMuxes, openBoth } from './support/mux-pair.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A socket whose reads the test makes (through PooledReads), and whose pause/resume it sees. */
class FakeSocket extends EventEmitter implements ByteSocket {
  paused = false;
  private resumed: (() => void) | undefined;
  write(_data: Uint8Array): boolean {
    return true;
  }
  end(): void {
    this.emit('close');
  }
  destroy(): void {
    this.emit('close');
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.resumed?.();
  }
  whenResumed(): Promise<void> {
    return new Promise((resolve) => (this.resumed = resolve));
  }
}

describe('spliceSocket with pooled reads', () => {
  it('sends every read intact and hands a buffer out again only after the peer acked its bytes', async () => {
    const { client, agent } = connectMuxes(cleanups);
    const window = 128 * 1024;
    const { local, remote } = openBoth(client, agent, { window });
    const received: Uint8Array[] = [];
    local.onData((data) => received.push(data.slice()));

    const readSize = 32 * 1024;
    const pool = new ReadBufferPool(readSize, 8);
    const reads = new PooledReads(pool);
    const socket = new FakeSocket();
    void spliceSocket(socket, remote, { reads });

    // 64 reads of 32 KiB, each filled with its own number, written as Node's onread would.
    const count = 64;
    const seen = new Set<ArrayBufferLike>();
    for (let i = 0; i < count; i++) {
      const buffer = reads.onread.buffer();
      seen.add(buffer.buffer);
      buffer.fill(i);
      // False is Node's cue to pause the socket; the splice resumes it on the stream's drain.
      if (!reads.onread.callback(readSize, buffer)) {
        socket.pause();
        await socket.whenResumed();
      }
    }
    const total = count * readSize;
    await new Promise<void>((resolve) => {
      const check = () => (received.reduce((n, r) => n + r.length, 0) >= total ? resolve() : setTimeout(check, 2));
      check();
    });
    const all = Buffer.concat(received);
    expect(all.length).toBe(total);
    for (let i = 0; i < count; i++) {
      // A buffer handed out again before its bytes were acked would show a later read's number here.
      expect(all.subarray(i * readSize, (i + 1) * readSize).every((byte) => byte === i)).toBe(true);
    }
    // The buffers went round: a window's worth and a few, not one per read.
    expect(seen.size).toBeLessThanOrEqual(window / readSize + 4);
  });

  it('puts small reads one after another in a buffer, uncopied, and reuses it only once all are acked', async () => {
    const { client, agent } = connectMuxes(cleanups);
    const { local, remote } = openBoth(client, agent);
    const received: Uint8Array[] = [];
    // Acks wait until the test lets them go: the buffers' bytes stay unacked meanwhile.
    local.autoAck = false;
    local.onData((data) => received.push(data.slice()));
    /** What the stream was given: views of pooled buffers, or copies. */
    const written = new Set<ArrayBufferLike>();
    const write = remote.write.bind(remote);
    remote.write = (data, options) => {
      written.add(data.buffer);
      return write(data, options);
    };
    const pool = new ReadBufferPool(64 * 1024, 8);
    const reads = new PooledReads(pool);
    void spliceSocket(new FakeSocket(), remote, { reads });

    /** 4 KiB answers, each filled with its own number, read as Node's onread would. */
    const answer = 4 * 1024;
    const read = (count: number, from: number) => {
      for (let i = from; i < from + count; i++) {
        const buffer = reads.onread.buffer();
        buffer.fill(i % 256, 0, answer);
        reads.onread.callback(answer, buffer);
      }
    };
    const arrived = async (bytes: number) => {
      while (received.reduce((n, r) => n + r.length, 0) < bytes) await new Promise((r) => setTimeout(r, 2));
    };
    // A buffer takes reads while 16 KiB of it are left: 13 of 4 KiB in 64 KiB.
    read(24, 0);
    expect(written.size).toBe(2);
    await arrived(24 * answer);
    // Not acked yet: once the second buffer is full, the next reads take a third.
    read(12, 24);
    expect(written.size).toBe(3);
    await arrived(36 * answer);
    local.ack(local.recvOffset);
    await new Promise((r) => setTimeout(r, 10));
    // Acked: the full buffers went back to the pool, and the next reads land in them again.
    read(24, 36);
    expect(written.size).toBe(3);
    await arrived(60 * answer);
    const all = Buffer.concat(received);
    for (let i = 0; i < 60; i++) {
      // A buffer read into again before its bytes were acked would show a later read's number here.
      expect(all.subarray(i * answer, (i + 1) * answer).every((byte) => byte === i % 256)).toBe(true);
    }
  });
});

describe('spliceSocket writes', () => {
  it('writes a piece alone in its task as it is, and corks the socket for the pieces of one task', async () => {
    const { client, agent } = connectMuxes(cleanups, { transport: { schedule: setImmediate } });
    const { local, remote } = openBoth(client, agent);
    /** What the socket was asked to do, in order. */
    const calls: string[] = [];
    const socket = new FakeSocket();
    Object.assign(socket, {
      write: (data: Uint8Array) => calls.push(`write ${data.length}`) > 0,
      cork: () => calls.push('cork'),
      uncork: () => calls.push('uncork'),
    });
    void spliceSocket(socket, remote, { later: afterThisTask });
    const settled = async () => {
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    };

    // A request: one frame, one task.
    local.write(new Uint8Array(100));
    await settled();
    expect(calls).toEqual(['write 100']);

    // Three frames (writes of 8 KiB or more are not joined) delivered in one task.
    calls.length = 0;
    for (let i = 0; i < 3; i++) local.write(new Uint8Array(10_000));
    await settled();
    expect(calls).toEqual(['cork', 'write 10000', 'write 10000', 'write 10000', 'uncork']);
  });
});

describe('spliceSocket acks', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a request and its answer cost one frame each way: acks wait for their timer instead of riding on the data', async () => {
    // Only the ack timers are fake; frames are delivered on setImmediate.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { pair, client, agent } = connectMuxes(cleanups, { transport: { schedule: setImmediate } });
    const sent = { client: [] as number[], agent: [] as number[] };
    for (const [index, side] of [
      [0, 'client'],
      [1, 'agent'],
    ] as const) {
      const transport = pair[index];
      const send = transport.send.bind(transport);
      transport.send = (frame) => {
        sent[side].push(frame[0]!);
        send(frame);
      };
    }
    const { local: browserStream, remote: originStream } = openBoth(client, agent);
    /** The browser's side and the dev server's side: each write is recorded, the server answers each request. */
    const browser = new FakeSocket();
    const origin = new FakeSocket();
    const answers: string[] = [];
    browser.write = (data: Uint8Array) => {
      answers.push(Buffer.from(data).toString());
      return true;
    };
    origin.write = (data: Uint8Array) => {
      const request = Buffer.from(data).toString();
      setImmediate(() => origin.emit('data', Buffer.from(`answer to ${request}`)));
      return true;
    };
    void spliceSocket(browser, browserStream);
    void spliceSocket(origin, originStream);

    const requests = 20;
    for (let i = 0; i < requests; i++) {
      const answered = answers.length;
      browser.emit('data', Buffer.from(`GET /${i}`));
      while (answers.length === answered) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(answers).toEqual(Array.from({ length: requests }, (_, i) => `answer to GET /${i}`));
    const count = (types: number[], type: number) => types.filter((t) => t === type).length;
    // One data frame per message; the acks still wait (with riding acks: one per message too).
    expect(count(sent.client, FRAME_TYPE.data)).toBe(requests);
    expect(count(sent.agent, FRAME_TYPE.data)).toBe(requests);
    expect(count(sent.client, FRAME_TYPE.ack) + count(sent.agent, FRAME_TYPE.ack)).toBe(0);

    // Their timer sends one cumulative ack per side, which gives the whole window back.
    vi.advanceTimersByTime(SPLICE_ACK_DELAY_MS);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(count(sent.client, FRAME_TYPE.ack)).toBe(1);
    expect(count(sent.agent, FRAME_TYPE.ack)).toBe(1);
    expect(browserStream.peerAckedOffset).toBe(browserStream.sentOffset);
    expect(originStream.peerAckedOffset).toBe(originStream.sentOffset);
  });
});

describe('spliceSocket writing to the socket handle (HandleWrites)', () => {
  const WINDOW = 256 * 1024;
  const CHUNK = 4 * 1024;
  /** Far more than loopback's socket buffers hold (4 MiB of send buffer at most by default): a reader that does not read stops the writer. */
  const TOTAL = 32 * 1024 * 1024;
  /** Byte i of the stream is i mod 251: a byte lost, doubled or moved shows. */
  const pattern = (offset: number, length: number) => {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = (offset + i) % 251;
    return bytes;
  };

  /** Reads `reader` to its end: how many bytes, and whether they were `pattern` from 0. */
  const readPattern = async (reader: Socket): Promise<{ got: number; intact: boolean }> => {
    let got = 0;
    let intact = true;
    const ended = once(reader, 'end');
    reader.on('data', (chunk: Buffer) => {
      if (intact && !chunk.equals(pattern(got, chunk.length))) intact = false;
      got += chunk.length;
    });
    reader.resume();
    await ended;
    return { got, intact };
  };

  /**
   * A spliced TCP connection over a mux pair: `local` is the stream's far end (what the browser's
   * side writes), `reader` the accepted socket at the other end of the spliced one (the dev
   * server), paused until the test reads.
   */
  async function splicedConnection() {
    const { client, agent } = connectMuxes(cleanups, { transport: { schedule: setImmediate } });
    const { local, remote } = openBoth(client, agent, { window: WINDOW });
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const [reader] = await accepted;
    cleanups.push(() => {
      socket.destroy();
      reader.destroy();
      server.close();
    });
    const writes = HandleWrites.of(socket);
    expect(writes).toBeDefined();
    /** Writes that went through the socket's Writable (the rest went to its handle). */
    let writableWrites = 0;
    const write = socket.write.bind(socket) as (data: Uint8Array, done?: () => void) => boolean;
    socket.write = ((data: Uint8Array, done?: () => void) => {
      writableWrites++;
      return write(data, done);
    }) as typeof socket.write;
    const spliced = spliceSocket(socket, remote, { later: afterThisTask, writes });
    return { local, remote, socket, reader, spliced, writableWrites: () => writableWrites };
  }

  /**
   * Writes the pattern into `local` with backpressure until `total` or until it is closed, one
   * chunk a turn: each arrives alone in its task, as a request or an answer does.
   */
  async function writePattern(local: LinkStream, remote: LinkStream, total: number): Promise<number> {
    let offset = 0;
    while (offset < total && !local.closed) {
      const room = local.write(pattern(offset, CHUNK));
      offset += CHUNK;
      if (!room) await new Promise<void>((resolve) => local.onDrain(() => resolve()));
      while (remote.recvOffset < offset && !local.closed) await new Promise((resolve) => setImmediate(resolve));
    }
    return offset;
  }

  /** Waits until the stream's sender is stuck: all it sent delivered, the rest waiting for credit. */
  async function stalled(local: LinkStream, remote: LinkStream) {
    let last = -1;
    // Each look is after the acks' delay: a writer still moving has moved by then.
    while (local.sentOffset !== last || remote.recvOffset !== local.sentOffset) {
      last = local.sentOffset;
      await new Promise((resolve) => setTimeout(resolve, SPLICE_ACK_DELAY_MS * 5));
    }
  }

  it('a reader that does not read holds the writer to the socket buffers and a window, then gets every byte in order, and the end', async () => {
    const { local, remote, reader, writableWrites } = await splicedConnection();
    const writing = writePattern(local, remote, TOTAL);
    await stalled(local, remote);
    // Credit only for bytes the kernel took: the sender is held far short of the whole.
    expect(local.sentOffset).toBeLessThan(TOTAL / 2);
    expect(local.sentOffset - local.peerAckedOffset).toBeLessThanOrEqual(WINDOW);
    const held = local.sentOffset;

    const read = readPattern(reader);
    const written = await writing;
    local.close({ code: PREVIEW_EOF, message: 'done' });
    expect(written).toBe(TOTAL);
    expect(await read).toEqual({ got: TOTAL, intact: true });
    expect(held).toBeGreaterThan(0);
    // Pieces alone in their task went to the handle, the waiting ones too: the Writable saw
    // few of them, if any.
    expect(writableWrites()).toBeLessThan(TOTAL / CHUNK / 10);
  });

  it('an end that comes while writes wait in the handle reaches the reader after all of them', async () => {
    const { local, remote, reader, spliced } = await splicedConnection();
    void writePattern(local, remote, TOTAL);
    await stalled(local, remote);
    // What the stream took: sent, and queued for credit (a close with flush sends it first).
    const accepted = local.sentOffset + local.queuedBytes;
    local.close({ code: PREVIEW_EOF, message: 'done' });
    const read = readPattern(reader);
    expect(await read).toEqual({ got: accepted, intact: true });
    expect((await spliced).code).toBe(PREVIEW_EOF);
  });

  it('a stream closed while writes wait in the handle destroys the socket and ends the splice', async () => {
    const { local, remote, socket, spliced } = await splicedConnection();
    void writePattern(local, remote, TOTAL);
    await stalled(local, remote);
    local.close({ code: 'E_UNAVAILABLE', message: 'browser went away' }, { flush: false });
    expect((await spliced).code).toBe('E_UNAVAILABLE');
    expect(socket.destroyed).toBe(true);
    // The handle's cancelled writes come back after the close: no ack, no throw.
    await new Promise((resolve) => setImmediate(resolve));
    expect(remote.closed).toBe(true);
  });

  it('a reader that goes away while writes wait in the handle ends the stream', async () => {
    const { local, remote, reader, spliced } = await splicedConnection();
    void writePattern(local, remote, TOTAL);
    await stalled(local, remote);
    const closed = new Promise((resolve) => local.onClose(resolve));
    reader.resetAndDestroy();
    await spliced;
    await closed;
    expect(local.closed).toBe(true);
  });
});
