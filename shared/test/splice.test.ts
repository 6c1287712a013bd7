import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  afterThisTask,
  FRAME_TYPE,
  PooledReads,
  ReadBufferPool,
  SPLICE_ACK_DELAY_MS,
  spliceSocket,
  type ByteSocket,
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
