import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { BULK_STREAM_WINDOW, encodeLogBlockHeader, LOG_BLOCK, type LinkStream, type Mux } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { downloadArtifacts } from '../../src/jobs/artifacts.js';
import { OFF_THREAD_BYTES } from '../../src/jobs/file-hasher.js';
import { MAX_INFLATED_AHEAD } from '../../src/jobs/log-blocks.js';
import { followJobLog, type LogChunk } from '../../src/jobs/log-follower.js';
import { packWorkspace, type PackedWorkspace } from '../../src/jobs/pack.js';
import { uploadWorkspace } from '../../src/jobs/upload.js';
import { FakeHost, JOB, jobInfo } from './fake-host.js';
import { useCleanups } from '../../../../test/support/cleanups.js';

const cleanups = useCleanups();

function tempDir(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-transfer-')));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function fakeHost(): FakeHost {
  const host = new FakeHost();
  cleanups.push(() => host.dispose());
  return host;
}

/** A log the fake agent serves from any offset, growing over time; `finish` ends the attempt. */
class FakeLog {
  bytes = Buffer.alloc(0);
  exit: number | null | undefined;
  private readonly followers = new Set<() => void>();

  append(data: Buffer): void {
    this.bytes = Buffer.concat([this.bytes, data]);
    for (const wake of this.followers) wake();
  }

  finish(exit: number): void {
    this.exit = exit;
    for (const wake of this.followers) wake();
  }

  /**
   * What the agent does for job.logs: write from `from` in log blocks (every other one
   * deflated), then close with log_end once complete.
   */
  serve(agent: Mux, streamId: number, from: number): void {
    const stream: LinkStream = agent.openStream({ id: streamId, sendOffset: 0, window: BULK_STREAM_WINDOW });
    let sent = from;
    let blocks = 0;
    const pump = () => {
      while (!stream.closed && sent < this.bytes.length) {
        const chunk = this.bytes.subarray(sent, Math.min(this.bytes.length, sent + 16 * 1024));
        sent += chunk.length;
        const body = blocks++ % 2 === 0 ? deflateRawSync(chunk) : chunk;
        const kind = body === chunk ? LOG_BLOCK.raw : LOG_BLOCK.deflate;
        stream.write(encodeLogBlockHeader(kind, chunk.length, body.length));
        if (!stream.write(body)) {
          const drain = stream.onDrain(() => {
            void drain.dispose();
            pump();
          });
          return;
        }
      }
      if (!stream.closed && sent === this.bytes.length && this.exit !== undefined) {
        this.followers.delete(pump);
        stream.close({ code: 'log_end', message: 'attempt ended', exit_code: this.exit });
      }
    };
    this.followers.add(pump);
    stream.onClose(() => this.followers.delete(pump));
    pump();
  }
}

/**
 * A fake host serving one growing log at attempt 1, followed by a reader that hands each chunk
 * back a turn later. `writeLines` appends 40,000 numbered lines in 20 appends.
 */
function followGrowingLog(throughRetries: boolean, setUp: (host: FakeHost) => void = () => {}) {
  const host = fakeHost();
  const log = new FakeLog();
  host.handlers['job.logs'] = (p, agent) => ({
    answer: { attempt: 1, from: p.from, compression: 'deflate' },
    after: () => log.serve(agent, p.stream_id, p.from),
  });
  setUp(host);
  const received: LogChunk[] = [];
  const statuses: string[] = [];
  const following = followJobLog(
    host,
    JOB,
    { follow: true, throughRetries },
    {
      data: (chunk, consumed) => {
        received.push(chunk);
        setTimeout(consumed, 0);
      },
      status: (s) => statuses.push(s),
    },
  );
  let line = 0;
  const writeLines = () => {
    for (let i = 0; i < 20; i++)
      log.append(Buffer.from(Array.from({ length: 2000 }, () => `line ${line++}\n`).join('')));
  };
  return { host, log, received, statuses, following, writeLines };
}

/** The chunks hold the log's bytes, each starting where the one before ended. */
function expectTheWholeLogInOrder(received: LogChunk[], bytes: Buffer) {
  expect(Buffer.concat(received.map((c) => c.data)).equals(bytes)).toBe(true);
  let at = 0;
  for (const chunk of received) {
    expect(chunk.offset).toBe(at);
    at += chunk.data.length;
  }
}

describe('following a job log', () => {
  it('a link dropped mid-log resumes at the byte it had: nothing lost, nothing doubled', async () => {
    const { host, log, received, statuses, following, writeLines } = followGrowingLog(true, (host) => {
      host.handlers['job.get'] = () => ({ answer: jobInfo('failed', 1, 3) });
    });
    writeLines();
    await until(() => received.length > 3);
    host.cut();
    writeLines();
    log.finish(3);
    const end = await following;

    expectTheWholeLogInOrder(received, log.bytes);
    expect(end).toEqual({ attempt: 1, offset: log.bytes.length, exitCode: 3 });
    expect(statuses).toEqual(['reconnecting', 'resumed']);
    expect(host.links).toBe(2);
  });

  it('a followed log moves to a better path at once: asked again there from the byte it had, nothing lost or doubled, no reconnect shown', async () => {
    const { host, log, received, statuses, following, writeLines } = followGrowingLog(false);
    writeLines();
    await until(() => received.length > 3);
    await host.move();
    // The stream on the old link is closed by the follower, not left to run until that link is retired.
    await until(() => host.movedOff[0]!.openStreamCount === 0);
    writeLines();
    log.finish(0);
    const end = await following;

    expectTheWholeLogInOrder(received, log.bytes);
    expect(end).toEqual({ attempt: 1, offset: log.bytes.length, exitCode: 0 });
    expect(statuses).toEqual([]);
    const asked = host.calls.filter((c) => c.method === 'job.logs').map((c) => c.params.from);
    expect(asked).toHaveLength(2);
    expect(asked[1]).toBeGreaterThan(0);
  });

  it('a retried job is followed into its next attempt', async () => {
    const host = fakeHost();
    const logs = [new FakeLog(), new FakeLog()];
    let attempt = 1;
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: p.attempt ?? attempt, from: p.from, compression: 'deflate' },
      after: () => logs[(p.attempt ?? attempt) - 1]!.serve(agent, p.stream_id, p.from),
    });
    host.handlers['job.get'] = () => ({
      answer:
        attempt === 1 ? jobInfo('running', 1) : jobInfo(logs[1]!.exit === undefined ? 'running' : 'succeeded', 2, 0),
    });
    const attempts: number[] = [];
    const text: string[] = [];
    const following = followJobLog(
      host,
      JOB,
      { follow: true, throughRetries: true },
      {
        data: (chunk, consumed) => {
          text.push(`${chunk.attempt}:${Buffer.from(chunk.data).toString()}`);
          consumed();
        },
        attempt: (n) => attempts.push(n),
      },
    );
    logs[0]!.append(Buffer.from('first try\n'));
    logs[0]!.finish(1);
    await until(() => text.length === 1);
    // The agent retries after a backoff and announces it.
    await new Promise((r) => setTimeout(r, 50));
    attempt = 2;
    host.emit('job.updated', { job: jobInfo('running', 2) });
    logs[1]!.append(Buffer.from('second try\n'));
    logs[1]!.finish(0);
    const end = await following;
    expect(attempts).toEqual([1, 2]);
    expect(text).toEqual(['1:first try\n', '2:second try\n']);
    expect(end.exitCode).toBe(0);
  });
});

describe('a follower that stops', () => {
  it('closes its stream on the host, which stops sending, and returns where it got to', async () => {
    const host = fakeHost();
    const log = new FakeLog();
    let hostSide: LinkStream | undefined;
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: 1, from: p.from, compression: 'deflate' },
      after: () => {
        log.serve(agent, p.stream_id, p.from);
        hostSide = agent.getStream(p.stream_id);
      },
    });
    log.append(Buffer.alloc(100_000, 'a'));
    const stop = new AbortController();
    let got = 0;
    const following = followJobLog(
      host,
      JOB,
      { follow: true, signal: stop.signal },
      {
        data: (chunk, consumed) => {
          got += chunk.data.length;
          consumed();
        },
      },
    );
    await until(() => got === 100_000);
    const closed = new Promise<{ code: string }>((resolve) => hostSide!.onClose(resolve));
    stop.abort();
    expect(await following).toEqual({ attempt: 1, offset: 100_000, exitCode: null });
    expect(await closed).toMatchObject({ code: 'cancelled' });
    log.append(Buffer.alloc(10, 'b'));
    expect(got).toBe(100_000);
  });
});

describe('a slow reader of a log that compresses well', () => {
  it('is handed at most about 4 MiB of inflated bytes ahead of what it consumed, and then all of it', async () => {
    const host = fakeHost();
    const block = Buffer.alloc(1024 * 1024, 'a');
    const deflated = deflateRawSync(block);
    const BLOCKS = 64;
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: 1, from: p.from, compression: 'deflate' },
      after: () => {
        const stream = agent.openStream({ id: p.stream_id, sendOffset: 0, window: BULK_STREAM_WINDOW });
        // 64 MiB of log in ~70 KiB on the wire: all of it fits in one credit window.
        for (let i = 0; i < BLOCKS; i++) {
          stream.write(encodeLogBlockHeader(LOG_BLOCK.deflate, block.length, deflated.length));
          stream.write(deflated);
        }
        stream.close({ code: 'log_end', message: 'attempt ended', exit_code: 0 });
      },
    });
    const held: (() => void)[] = [];
    let handed = 0;
    const following = followJobLog(
      host,
      JOB,
      { follow: true },
      {
        data: (chunk, consumed) => {
          handed += chunk.data.length;
          held.push(consumed);
        },
      },
    );
    await until(() => handed > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handed).toBeLessThanOrEqual(MAX_INFLATED_AHEAD + block.length);
    // The reader catches up: everything arrives, in order, and the follow ends.
    const drain = setInterval(() => held.splice(0).forEach((consumed) => consumed()), 1);
    const end = await following.finally(() => clearInterval(drain));
    expect(end).toEqual({ attempt: 1, offset: BLOCKS * block.length, exitCode: 0 });
    expect(handed).toBe(BLOCKS * block.length);
  });
});

describe('a log that compresses well, inflated into buffers that go round', () => {
  const MB = 1024 * 1024;
  const BLOCK = 4 * MB;
  /** 24 MiB of numbered lines: every piece different, each 4 MiB block well compressed. */
  const log = Buffer.from(Array.from({ length: 1_700_000 }, (_, i) => `line ${i} of the log\n`).join('')).subarray(
    0,
    24 * MB,
  );

  /** Serves `log` from any offset in deflated blocks of 4 MiB (as an agent does while a log compresses). */
  function serving(): FakeHost {
    const host = fakeHost();
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: 1, from: p.from, compression: 'deflate' },
      after: () => {
        const stream = agent.openStream({ id: p.stream_id, sendOffset: 0, window: BULK_STREAM_WINDOW });
        let sent = p.from;
        const pump = () => {
          while (!stream.closed && sent < log.length) {
            const chunk = log.subarray(sent, Math.min(log.length, sent + BLOCK));
            sent += chunk.length;
            const body = deflateRawSync(chunk, { level: 1 });
            stream.write(encodeLogBlockHeader(LOG_BLOCK.deflate, chunk.length, body.length));
            if (!stream.write(body)) {
              const drain = stream.onDrain(() => {
                void drain.dispose();
                pump();
              });
              return;
            }
          }
          if (!stream.closed) stream.close({ code: 'log_end', message: 'attempt ended', exit_code: 0 });
        };
        pump();
      },
    });
    return host;
  }

  interface Held {
    chunk: LogChunk;
    consumed: () => void;
  }
  /** The piece's bytes are the log's at its offset (now, whatever happened to its buffer since). */
  const intact = ({ chunk }: Held) =>
    Buffer.from(chunk.data).equals(log.subarray(chunk.offset, chunk.offset + chunk.data.length));

  it('arrives byte for byte while its buffers are reused, and a piece never consumed is never overwritten', async () => {
    const pieces: Held[] = [];
    const copies: LogChunk[] = [];
    /** The blocks each buffer held pieces of. */
    const buffers = new Map<ArrayBufferLike, Set<number>>();
    let wrong = 0;
    const end = await followJobLog(
      serving(),
      JOB,
      { follow: true },
      {
        data: (chunk, consumed) => {
          const held = { chunk, consumed };
          if (!intact(held)) wrong++;
          pieces.push(held);
          copies.push({ ...chunk, data: Buffer.from(chunk.data) });
          const blocks = buffers.get(chunk.data.buffer) ?? new Set();
          buffers.set(chunk.data.buffer, blocks.add(Math.floor(chunk.offset / BLOCK)));
          // The first piece stays lent (to a stream that closed before the UI acked it); the rest
          // are consumed a turn later, as a UI acks.
          if (pieces.length > 1) setTimeout(consumed, 0);
        },
      },
    );
    expect(end).toEqual({ attempt: 1, offset: log.length, exitCode: 0 });
    expect(wrong).toBe(0);
    // Copies made as each piece arrived: a consumed piece's buffer is read into again after.
    expectTheWholeLogInOrder(copies, log);
    expect(intact(pieces[0]!)).toBe(true);
    expect(pieces[0]!.chunk.data.length).toBe(MB);
    // 24 pieces of 1 MiB: buffers held pieces of one block, then of another.
    expect(pieces.length).toBe(24);
    expect([...buffers.values()].some((blocks) => blocks.size > 1)).toBe(true);
  });

  it('a follower that stops mid-log keeps the pieces it holds intact, and following again from where it got gives the rest', async () => {
    const host = serving();
    const stop = new AbortController();
    const first: Held[] = [];
    let afterEnd = 0;
    let ended = false;
    const following = followJobLog(
      host,
      JOB,
      { follow: true, signal: stop.signal },
      {
        data: (chunk, consumed) => {
          if (ended) afterEnd++;
          first.push({ chunk, consumed });
        },
      },
    );
    // Nothing consumed: 4 MiB are handed out, then the follower stops.
    await until(() => first.length === 4);
    stop.abort();
    const end = await following;
    ended = true;
    expect(end).toEqual({ attempt: 1, offset: 4 * MB, exitCode: null });
    // Late acks of two of them (the UI acked just before it went): their buffers may go round.
    first[0]!.consumed();
    first[1]!.consumed();
    const rest: LogChunk[] = [];
    const again = await followJobLog(
      host,
      JOB,
      { follow: true, from: end.offset },
      { data: (chunk, consumed) => (rest.push({ ...chunk, data: Buffer.from(chunk.data) }), consumed()) },
    );
    expect(again).toEqual({ attempt: 1, offset: log.length, exitCode: 0 });
    expect(Buffer.concat(rest.map((chunk) => chunk.data)).equals(log.subarray(4 * MB))).toBe(true);
    expect(afterEnd).toBe(0);
    expect(first.slice(2).every(intact)).toBe(true);
  });
});

describe('a compressed log from a host that lies', () => {
  /** Serves exactly these stream bytes as the log, then closes with log_end. */
  function serving(bytes: Uint8Array): FakeHost {
    const host = fakeHost();
    host.handlers['job.logs'] = (p, agent) => ({
      answer: { attempt: 1, from: p.from, compression: 'deflate' },
      after: () => {
        const stream = agent.openStream({ id: p.stream_id, sendOffset: 0, window: BULK_STREAM_WINDOW });
        stream.write(bytes);
        stream.close({ code: 'log_end', message: 'attempt ended', exit_code: 0 });
      },
    });
    return host;
  }
  const follow = (host: FakeHost, received: Buffer[]) =>
    followJobLog(
      host,
      JOB,
      { follow: true },
      { data: (chunk, consumed) => (received.push(Buffer.from(chunk.data)), consumed()) },
    );
  const block = (kind: 0 | 1, logBytes: number, body: Uint8Array) =>
    Buffer.concat([encodeLogBlockHeader(kind, logBytes, body.length), body]);

  it('a block that inflates to more than it declared is refused, after the good blocks before it', async () => {
    const good = block(LOG_BLOCK.raw, 3, Buffer.from('ok\n'));
    const bomb = block(LOG_BLOCK.deflate, 1024, deflateRawSync(Buffer.alloc(64 * 1024 * 1024)));
    const received: Buffer[] = [];
    await expect(follow(serving(Buffer.concat([good, bomb])), received)).rejects.toMatchObject({
      code: 'E_PROTOCOL',
      message: expect.stringContaining('does not inflate'),
    });
    expect(Buffer.concat(received).toString()).toBe('ok\n');
  });

  it('a block shorter than declared, an unknown kind, an oversized block and a log ending mid-block are refused', async () => {
    const cases: [Buffer, string][] = [
      [block(LOG_BLOCK.deflate, 100, deflateRawSync(Buffer.alloc(10))), 'inflated to 10 bytes'],
      [block(7 as 0, 3, Buffer.from('abc')), 'unknown block kind 7'],
      [Buffer.from(encodeLogBlockHeader(LOG_BLOCK.raw, 64 * 1024 * 1024, 64 * 1024 * 1024)), 'log bytes'],
      [block(LOG_BLOCK.raw, 3, Buffer.from('abc')).subarray(0, 10), 'ended inside a block'],
    ];
    for (const [bytes, message] of cases) {
      await expect(follow(serving(bytes), [])).rejects.toMatchObject({
        code: 'E_PROTOCOL',
        message: expect.stringContaining(message),
      });
    }
  });
});

describe('uploading a workspace', () => {
  async function packed(): Promise<PackedWorkspace> {
    const dir = tempDir();
    writeFileSync(join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    writeFileSync(join(dir, 'small.txt'), 'hello');
    const result = await packWorkspace(dir);
    cleanups.push(() => result.dispose());
    return result;
  }

  function storingHost(): { host: FakeHost; stored: Map<string, Buffer> } {
    const host = fakeHost();
    const stored = new Map<string, Buffer>();
    const incoming = new Map<string, Buffer[]>();
    host.handlers['workspace.has'] = (p) => ({ answer: { present: stored.has(p.hash) } });
    host.handlers['workspace.upload'] = (p, agent) => {
      const parts: Buffer[] = [];
      incoming.set(p.hash, parts);
      const stream = agent.openStream({ id: p.stream_id });
      stream.onData((data) => parts.push(Buffer.from(data)));
      return { answer: {} };
    };
    host.handlers['workspace.commit'] = (p) => {
      const bytes = Buffer.concat(incoming.get(p.hash) ?? []);
      if (createHash('sha256').update(bytes).digest('hex') !== p.hash) throw new Error('hash mismatch');
      stored.set(p.hash, bytes);
      return { answer: { present: true, size: bytes.length } };
    };
    return { host, stored };
  }

  it('sends the tarball with progress, and the host gets exactly its bytes', async () => {
    const { host, stored } = storingHost();
    const workspace = await packed();
    const progress: number[] = [];
    const result = await uploadWorkspace(host, workspace, (p) => progress.push(p.done));
    expect(result).toEqual({ skipped: false, size: workspace.size });
    expect(stored.get(workspace.hash)!.equals(readFileSync(workspace.path))).toBe(true);
    expect(progress.at(-1)).toBe(workspace.size);
    expect(progress.length).toBeGreaterThan(5);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]!);
  });

  it('a host that already has the content is not sent it again', async () => {
    const { host } = storingHost();
    const workspace = await packed();
    await uploadWorkspace(host, workspace);
    const second = await uploadWorkspace(host, workspace);
    expect(second.skipped).toBe(true);
    expect(host.calls.filter((c) => c.method === 'workspace.upload')).toHaveLength(1);
  });
});

describe('downloading artifacts', () => {
  function artifactHost(files: Record<string, Buffer>, lie?: string): FakeHost {
    const host = fakeHost();
    const info = Object.entries(files).map(([path, bytes]) => ({
      path,
      size: bytes.length,
      sha256: createHash('sha256')
        .update(path === lie ? Buffer.from('something else') : bytes)
        .digest('hex'),
    }));
    host.handlers['artifact.list'] = () => ({ answer: { artifacts: info } });
    host.handlers['artifact.fetch'] = (p, agent) => {
      const stream = agent.openStream({ id: p.stream_id, sendOffset: p.from, window: BULK_STREAM_WINDOW });
      return {
        answer: info.find((a) => a.path === p.path),
        after: () => {
          const bytes = files[p.path]!.subarray(p.from);
          // The first fetch of a file can be made to stop half-way (the test cuts the link then).
          if (cutHalfway && host.calls.filter((c) => c.method === 'artifact.fetch').length === 1) {
            stream.write(bytes.subarray(0, bytes.length >> 1));
            return;
          }
          // The first fetch can be made to send all but its end (the test moves the link meanwhile).
          if (holdOpen && host.calls.filter((c) => c.method === 'artifact.fetch').length === 1) {
            stream.write(bytes.subarray(0, bytes.length - 1));
            return;
          }
          if (damage === 'flip') {
            // One byte changed on the way, the size right.
            const sent = Buffer.from(bytes);
            sent[sent.length >> 1]! ^= 0x40;
            stream.write(sent);
          } else if (damage === 'endless') {
            // A host that sends past the recorded size, for as long as the stream takes it.
            stream.write(bytes);
            const more = () => {
              while (!stream.closed && sentPast < 256 * 1024 * 1024 && stream.write(Buffer.alloc(1024 * 1024, 7))) {
                sentPast += 1024 * 1024;
              }
            };
            stream.onDrain(more);
            more();
            return;
          } else {
            stream.write(damage === 'truncate' ? bytes.subarray(0, bytes.length - 1000) : bytes);
          }
          stream.close({ code: 'artifact_end', message: 'done' });
        },
      };
    };
    return host;
  }
  let cutHalfway = false;
  let holdOpen = false;
  let damage: 'flip' | 'truncate' | 'endless' | undefined;
  let sentPast = 0;

  it('artifacts land under the folder with their paths, sha256 checked', async () => {
    const files = { 'build/app.ipa': Buffer.alloc(700_000, 1), 'report.txt': Buffer.from('ok\n') };
    const out = tempDir();
    const done = await downloadArtifacts(artifactHost(files), JOB, out);
    expect(done.map((d) => d.path)).toEqual(['build/app.ipa', 'report.txt']);
    expect(readFileSync(join(out, 'build/app.ipa')).equals(files['build/app.ipa'])).toBe(true);
    expect(readFileSync(join(out, 'report.txt'), 'utf8')).toBe('ok\n');
  });

  it('a link dropped half-way through an artifact resumes at the byte the file has', async () => {
    cutHalfway = true;
    const bytes = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251));
    const host = artifactHost({ 'dist/app.tar': bytes });
    const out = tempDir();
    const seen: number[] = [];
    let cut = false;
    await downloadArtifacts(host, JOB, out, (p) => {
      seen.push(p.done);
      // Cut once the file has the first half: the next try must resume at that byte.
      if (!cut && p.done === bytes.length >> 1) {
        cut = true;
        host.cut();
      }
    });
    cutHalfway = false;
    expect(readFileSync(join(out, 'dist/app.tar')).equals(bytes)).toBe(true);
    const fetches = host.calls.filter((c) => c.method === 'artifact.fetch').map((c) => c.params.from);
    expect(fetches).toEqual([0, 1_500_000]);
    expect(host.links).toBe(2);
    expect(seen.at(-1)).toBe(bytes.length);
    expect(readdirSync(join(out, 'dist'))).toEqual(['app.tar']);
  });

  it('a download moves to a better path at once, going on there from the byte the file has', async () => {
    holdOpen = true;
    const bytes = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251));
    const host = artifactHost({ 'dist/app.tar': bytes });
    const out = tempDir();
    let moved: Promise<Mux> | undefined;
    await downloadArtifacts(host, JOB, out, (p) => {
      if (moved === undefined && p.done >= 1_000_000) moved = host.move();
    });
    holdOpen = false;
    expect(readFileSync(join(out, 'dist/app.tar')).equals(bytes)).toBe(true);
    const fetches = host.calls.filter((c) => c.method === 'artifact.fetch').map((c) => c.params.from);
    expect(fetches).toHaveLength(2);
    expect(fetches[1]).toBeGreaterThanOrEqual(1_000_000);
    expect(fetches[1]).toBeLessThan(bytes.length);
    expect(host.links).toBe(2);
    // The old link's stream was closed by the download, not left for the old link's retirement.
    expect(host.movedOff[0]!.openStreamCount).toBe(0);
    expect(readdirSync(join(out, 'dist'))).toEqual(['app.tar']);
  });

  it('asked for one path, only that artifact is fetched; a path the job lacks fetches nothing', async () => {
    const files = { 'build/app.ipa': Buffer.alloc(700_000, 1), 'report.txt': Buffer.from('ok\n') };
    const host = artifactHost(files);
    const out = tempDir();
    const done = await downloadArtifacts(host, JOB, out, undefined, ['report.txt']);
    expect(done.map((d) => d.path)).toEqual(['report.txt']);
    expect(readdirSync(out)).toEqual(['report.txt']);
    await expect(downloadArtifacts(host, JOB, out, undefined, ['nope.bin'])).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
      message: expect.stringContaining('it has: build/app.ipa, report.txt'),
    });
    expect(host.calls.filter((c) => c.method === 'artifact.fetch').map((c) => c.params.path)).toEqual(['report.txt']);
  });

  it('an artifact whose bytes do not match its sha256 is refused and not left behind', async () => {
    const out = tempDir();
    await expect(
      downloadArtifacts(artifactHost({ 'app.bin': Buffer.from('real') }, 'app.bin'), JOB, out),
    ).rejects.toMatchObject({ message: expect.stringContaining('arrived damaged') });
    expect(existsSync(join(out, 'app.bin'))).toBe(false);
    expect(readdirSync(out)).toEqual([]);
  });

  // Sizes both sides of OFF_THREAD_BYTES: hashed on the event loop, and in the hashing thread.
  for (const size of [OFF_THREAD_BYTES - 1, 3 * OFF_THREAD_BYTES + 17]) {
    for (const how of ['flip', 'truncate'] as const) {
      it(`an artifact of ${size} bytes that arrives with ${how === 'flip' ? 'one byte changed' : 'its end missing'} is refused and not left behind`, async () => {
        const bytes = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919) % 251));
        const out = tempDir();
        damage = how;
        try {
          await expect(downloadArtifacts(artifactHost({ 'app.bin': bytes }), JOB, out)).rejects.toMatchObject({
            code: 'E_PROTOCOL',
            message: expect.stringContaining('arrived damaged'),
          });
        } finally {
          damage = undefined;
        }
        expect(readdirSync(out)).toEqual([]);
        // The same bytes sent whole land, so the refusal was the damage's doing.
        await downloadArtifacts(artifactHost({ 'app.bin': bytes }), JOB, out);
        expect(readFileSync(join(out, 'app.bin')).equals(bytes)).toBe(true);
      });
    }
  }

  it('a host that sends past the recorded size is stopped there: nothing more lands, the download fails as damaged', async () => {
    const bytes = Buffer.alloc(100_000, 3);
    const out = tempDir();
    damage = 'endless';
    sentPast = 0;
    const written: number[] = [];
    try {
      await expect(
        downloadArtifacts(artifactHost({ 'app.bin': bytes }), JOB, out, (p) => written.push(p.done)),
      ).rejects.toMatchObject({
        code: 'E_PROTOCOL',
        message: expect.stringContaining('more than its recorded 100000 bytes'),
      });
    } finally {
      damage = undefined;
    }
    expect(Math.max(...written)).toBeLessThanOrEqual(bytes.length);
    // Stopped within a window of the end, not after the host's 256 MiB.
    expect(sentPast).toBeLessThan(64 * 1024 * 1024);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a partial file changed on disk between tries is refused: the sha256 is of what the file holds', async () => {
    cutHalfway = true;
    const bytes = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251));
    const host = artifactHost({ 'dist/app.tar': bytes });
    const out = tempDir();
    let cut = false;
    try {
      await expect(
        downloadArtifacts(host, JOB, out, (p) => {
          if (!cut && p.done === bytes.length >> 1) {
            cut = true;
            // A byte the first try wrote changes on disk before the next try resumes after it.
            const partial = join(out, 'dist', partialIn(join(out, 'dist'), 'app.tar'));
            const held = readFileSync(partial);
            held[1000]! ^= 1;
            writeFileSync(partial, held);
            host.cut();
          }
        }),
      ).rejects.toMatchObject({ code: 'E_PROTOCOL', message: expect.stringContaining('arrived damaged') });
    } finally {
      cutHalfway = false;
    }
    expect(host.calls.filter((c) => c.method === 'artifact.fetch').map((c) => c.params.from)).toEqual([0, 1_500_000]);
    expect(readdirSync(join(out, 'dist'))).toEqual([]);
  });

  it("an artifact named like another's partial file lands beside it: neither download removes the other's file", async () => {
    // The host names the paths: `.a.hangar-partial` was where `a` was written before its rename.
    const files = { '.a.hangar-partial': Buffer.from('first\n'), a: Buffer.from('second\n') };
    const out = tempDir();
    const done = await downloadArtifacts(artifactHost(files), JOB, out);
    expect(done.map((d) => d.path)).toEqual(['.a.hangar-partial', 'a']);
    expect(readFileSync(join(out, '.a.hangar-partial'), 'utf8')).toBe('first\n');
    expect(readFileSync(join(out, 'a'), 'utf8')).toBe('second\n');
    expect(readdirSync(out).sort()).toEqual(['.a.hangar-partial', 'a']);
  });

  it('two downloads of one artifact into one folder at once: each lands the whole file, checked, and leaves no partial file', async () => {
    const bytes = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251));
    const host = artifactHost({ 'dist/app.tar': bytes });
    const out = tempDir();
    let second: Promise<unknown> | undefined;
    const first = downloadArtifacts(host, JOB, out, (p) => {
      // The second starts while the first is writing its partial file.
      if (second === undefined && p.done > 0 && p.done < bytes.length) second = downloadArtifacts(host, JOB, out);
    });
    await first;
    // What the first reported downloaded is the artifact, whole, as it returns.
    expect(readFileSync(join(out, 'dist/app.tar')).equals(bytes)).toBe(true);
    expect(second).toBeDefined();
    await second;
    expect(readFileSync(join(out, 'dist/app.tar')).equals(bytes)).toBe(true);
    expect(readdirSync(join(out, 'dist'))).toEqual(['app.tar']);
  });

  it('an artifact path that escapes the folder is refused', async () => {
    const out = tempDir();
    await expect(downloadArtifacts(artifactHost({ '../evil.sh': Buffer.from('x') }), JOB, out)).rejects.toMatchObject({
      code: 'E_ARTIFACT_UNSAFE',
    });
  });
});

/** The download's partial file of `name` in `dir` (its name has a random part). */
function partialIn(dir: string, name: string): string {
  const found = readdirSync(dir).filter((n) => n.startsWith(`.${name}.`) && n.endsWith('.hangar-partial'));
  expect(found).toHaveLength(1);
  return found[0]!;
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
