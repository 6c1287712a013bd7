import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeFrame,
  encodeLengthPrefixed,
  followCoreJobLog,
  LeasedReads,
  Mux,
  ReadBufferPool,
  wrapByteStream,
  type JobLogApi,
  type OpenStreamOptions,
} from '@hangar/shared';
import { NullSocket } from './support/null-socket.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const READ_BYTES = 16 * 1024;

/** A pool that counts the buffers given back to it. */
class CountingPool extends ReadBufferPool {
  given = 0;
  override give(buffer: Uint8Array): void {
    this.given++;
    super.give(buffer);
  }
}

/**
 * A command's side of the core API on a mux whose socket reads land in pooled buffers: the
 * core's events are fired by the test, and its log bytes and close arrive as frames in reads of
 * READ_BYTES. `buffers` are those the reads went into.
 */
function coreWithPooledReads() {
  const pool = new CountingPool(READ_BYTES, 32);
  const reads = new LeasedReads(pool);
  const mux = new Mux(wrapByteStream(new NullSocket(), { later: setImmediate }, reads), { role: 'client' });
  cleanups.push(() => mux.dispose());
  const listeners = new Map<string, (data: unknown) => void>();
  let streamId = 0;
  let offset = 0;
  const api = {
    openStream: (options?: OpenStreamOptions) => {
      // As MuxCoreApi's: the caller acks what it has consumed.
      const stream = mux.openStream(options);
      stream.autoAck = false;
      streamId = stream.id;
      return stream;
    },
    on: (event: string, listener: (data: unknown) => void) => {
      listeners.set(event, listener);
      return { dispose: () => listeners.delete(event) };
    },
    call: () => Promise.resolve({ attempt: 1 }),
  } as unknown as JobLogApi;
  const arrive = (frames: Uint8Array[]): Uint8Array[] => {
    const wire = Buffer.concat(frames.map((frame) => encodeLengthPrefixed(frame)));
    const used: Uint8Array[] = [];
    for (let at = 0; at < wire.length; at += READ_BYTES) {
      const buffer = reads.onread.buffer();
      used.push(buffer);
      const chunk = wire.subarray(at, Math.min(at + READ_BYTES, wire.length));
      buffer.set(chunk);
      reads.onread.callback(chunk.length, buffer);
    }
    return used;
  };
  return {
    api,
    pool,
    event: (name: string, data: Record<string, unknown>) => listeners.get(name)?.({ stream_id: streamId, ...data }),
    /** Log bytes from the core, in one socket read or a few. */
    data(bytes: Uint8Array): Uint8Array[] {
      const frame = encodeFrame({ type: 'data', stream: streamId, offset, payload: bytes });
      offset += bytes.length;
      return arrive([frame]);
    },
    end: () =>
      arrive([
        encodeFrame({ type: 'close', stream: streamId, reason: JSON.stringify({ code: 'log_end', message: 'end' }) }),
      ]),
  };
}

describe('following a job log through the core (followCoreJobLog)', () => {
  it('the host link note comes between the bytes before it and those after, though the event overtook them', async () => {
    const core = coreWithPooledReads();
    const said: string[] = [];
    const log = await followCoreJobLog(
      core.api,
      { host: 'mini', id: 'j-1a2b3c4d', follow: true },
      {
        data: (data, _attempt, done) => {
          said.push(new TextDecoder().decode(data));
          done();
        },
        link: (status) => said.push(`<${status}>`),
      },
    );
    core.event('jobs.log_attempt', { attempt: 1, stream_offset: 0 });
    core.data(new TextEncoder().encode('one\n'));
    // The core wrote "two\n" to the stream, then its host link dropped: the event comes first.
    core.event('jobs.log_link', { status: 'reconnecting', stream_offset: 8 });
    expect(said).toEqual(['one\n']);
    core.data(new TextEncoder().encode('two\nthree\n'));
    core.event('jobs.log_link', { status: 'resumed', stream_offset: 14 });
    core.end();
    expect(said).toEqual(['one\n', 'two\n', '<reconnecting>', 'three\n', '<resumed>']);
    expect((await log.ended).code).toBe('log_end');
  });

  it('bytes a sink is done with after the log ended still give their read buffers back', async () => {
    const core = coreWithPooledReads();
    const pending: (() => void)[] = [];
    const log = await followCoreJobLog(
      core.api,
      { host: 'mini', id: 'j-1a2b3c4d', follow: true },
      {
        data: (_data, _attempt, done) => pending.push(done),
      },
    );
    core.event('jobs.log_attempt', { attempt: 1, stream_offset: 0 });
    const reads = core.data(new Uint8Array(100 * 1024).fill(1)).length;
    core.end();
    await log.ended;
    // The terminal takes the last bytes after the end came (a slow pipe): each read's buffer goes
    // back to the pool then, not to the collector.
    const before = core.pool.given;
    for (const done of pending.splice(0)) done();
    expect(core.pool.given - before).toBe(reads);
  });
});
