import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_LOG_BLOCK_BYTES } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { startJobHost, waitUntil } from './fixture.js';

const MB = 1024 * 1024;
/** Numbered lines, so any loss, duplicate or reordering changes the digest. */
const numberedLines = (count: number) =>
  `seq 1 ${count} | awk '{ printf "line %09d %s\\n", $1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }'`;
const LINE_BYTES = 'line 000000001 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n'.length;

function expectedLines(count: number): string {
  const hash = createHash('sha256');
  for (let i = 1; i <= count; i++) hash.update(`line ${String(i).padStart(9, '0')} ${'x'.repeat(36)}\n`);
  return hash.digest('hex');
}

describe('job logs', () => {
  it('50 MB of output arrives complete and in order to a follower', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const count = Math.ceil((50 * MB) / LINE_BYTES);
    const job = await host.submit({ command: numberedLines(count), executor: 'shell' });
    const log = await client.readLog(job.id, { follow: true });
    expect(log.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
    expect(log.data.length).toBe(count * LINE_BYTES);
    expect(createHash('sha256').update(log.data).digest('hex')).toBe(expectedLines(count));
  });

  it('a follower that disconnects mid-way resumes from its offset with nothing lost or doubled', async () => {
    await using host = await startJobHost();
    const count = Math.ceil((8 * MB) / LINE_BYTES);
    // Slow enough that the first follower leaves while the job still writes.
    const job = await host.submit({
      command: `${numberedLines(count)} | while read -r l; do echo "$l"; done`,
      executor: 'shell',
    });
    const first = await host.connect().readLog(job.id, { follow: true, stopAfter: 100_000 });
    expect(first.reason.code).toBe('client_gone');
    expect(host.jobs.get(job.id).state).toBe('running');
    // A new link, as after a reconnect, asks for the rest.
    const rest = await host.connect().readLog(job.id, { follow: true, from: first.end });
    expect(rest.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
    const whole = Buffer.concat([first.data, rest.data]);
    expect(whole.length).toBe(count * LINE_BYTES);
    expect(createHash('sha256').update(whole).digest('hex')).toBe(expectedLines(count));
  });

  it('without follow the log ends at its current end; a queued job is followed from its first byte', async () => {
    await using host = await startJobHost({ maxJobs: 1 });
    const client = host.connect();
    const blocker = await host.submit({ command: 'echo first; sleep 30', executor: 'shell' });
    const waiting = await host.submit({ command: 'echo second', executor: 'shell' });
    await waitUntil(() => host.jobs.get(blocker.id).attempts[0]?.log_size === 6 || undefined);
    const snapshot = await client.readLog(blocker.id);
    expect(snapshot.data.toString()).toBe('first\n');
    expect(snapshot.reason).toMatchObject({ code: 'log_end', exit_code: null });
    const follower = client.readLog(waiting.id, { follow: true });
    await client.call('job.cancel', { id: blocker.id });
    const followed = await follower;
    expect(followed.data.toString()).toBe('second\n');
    expect(followed.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
  });

  it('a log survives the job and can be read from any offset', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const job = await host.submit({ command: 'printf abcdefghij', executor: 'shell' });
    await host.waitFor(job.id);
    expect((await client.readLog(job.id, { from: 4 })).data.toString()).toBe('efghij');
    await expect(client.readLog(job.id, { from: 11 })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
  });
});

describe('job logs written straight to the file', () => {
  it('stderr and stdout keep the order written, and output after the job ended is not part of its log', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    // A process that leaves the job's group, and drops HANGAR_JOB_ID so that the job's end does
    // not kill it, keeps the log file open and writes after the end, then leaves a mark outside
    // the workspace: the test reads the log once that write is done.
    const wroteLate = join(host.dataDir, 'wrote-late');
    const job = await host.submit({
      command:
        'echo out; echo err >&2; echo out2; ' +
        `env -u HANGAR_JOB_ID setsid sh -c ": > escaped; sleep 0.3; echo late; : > ${wroteLate}" & ` +
        'while [ ! -e escaped ]; do sleep 0.01; done; echo done',
      executor: 'shell',
    });
    await host.waitFor(job.id);
    await waitUntil(() => existsSync(wroteLate));
    const log = await client.readLog(job.id, { follow: true });
    expect(log.data.toString()).toBe('out\nerr\nout2\ndone\n');
    expect(log.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
    expect(host.jobs.get(job.id).attempts[0]?.log_size).toBe(log.data.length);
  });
});

describe('compressed job logs', () => {
  it('a follower asking for deflate gets the same 50 MB, mostly in deflated blocks', async () => {
    await using host = await startJobHost();
    const count = Math.ceil((50 * MB) / LINE_BYTES);
    const job = await host.submit({ command: numberedLines(count), executor: 'shell' });
    const log = await host.connect().readLog(job.id, { follow: true, compression: 'deflate' });
    expect(log.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
    expect(log.data.length).toBe(count * LINE_BYTES);
    expect(createHash('sha256').update(log.data).digest('hex')).toBe(expectedLines(count));
    expect(log.blocks.deflate).toBeGreaterThan(log.blocks.raw);
  });

  it('output that does not compress goes in raw blocks, byte for byte, and any offset can be asked for', async () => {
    await using host = await startJobHost();
    const client = host.connect();
    const job = await host.submit({ command: 'head -c 20000000 /dev/urandom', executor: 'shell' });
    await host.waitFor(job.id);
    const plain = await client.readLog(job.id);
    expect(plain.data.length).toBe(20_000_000);
    const packed = await client.readLog(job.id, { compression: 'deflate' });
    expect(packed.data.equals(plain.data)).toBe(true);
    // Random bytes never shrink enough to be worth it, so no block goes deflated.
    expect(packed.blocks).toMatchObject({ deflate: 0 });
    const tail = await client.readLog(job.id, { compression: 'deflate', from: 12_345_678 });
    expect(tail.data.equals(plain.data.subarray(12_345_678))).toBe(true);
  });

  it('a log that compresses, then does not, then does again arrives whole, in blocks any core accepts', async () => {
    await using host = await startJobHost();
    const truthDir = mkdtempSync(join(tmpdir(), 'hangar-log-truth-'));
    const truthFile = join(truthDir, 'printed');
    try {
      // While blocks compress the agent reads bigger pieces; a random stretch inside one of them
      // sends it raw, and the pieces after it are 1 MiB again until text compresses once more.
      const size = 30 * MB + 7;
      const command =
        `{ yes compressible-line | head -c ${12 * MB}; head -c ${6 * MB + 3} /dev/urandom; ` +
        `yes another-line | head -c ${12 * MB + 4}; } | tee ${truthFile}`;
      const job = await host.submit({ command, executor: 'shell' });
      const live = await host.connect().readLog(job.id, { follow: true, compression: 'deflate' });
      expect(live.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
      const truth = readFileSync(truthFile);
      expect(truth.length).toBe(size);
      expect(live.data.equals(truth)).toBe(true);
      // The ended log read again: the whole file is there, so the pieces are as big as they get.
      const again = await host.connect().readLog(job.id, { compression: 'deflate' });
      expect(again.data.equals(truth)).toBe(true);
      expect(again.blocks.deflate).toBeGreaterThan(0);
      expect(again.blocks.raw).toBeGreaterThan(0);
      // Bigger than the 1 MiB pieces of raw stretches, within what a core accepts (the reader checks).
      expect(again.blocks.largest).toBeGreaterThan(MB);
      expect(again.blocks.largest).toBeLessThanOrEqual(MAX_LOG_BLOCK_BYTES);
    } finally {
      rmSync(truthDir, { recursive: true, force: true });
    }
  });

  it('a big piece that turns out not to compress goes in raw blocks a block-at-a-time reader can take in its window', async () => {
    await using host = await startJobHost();
    const truthDir = mkdtempSync(join(tmpdir(), 'hangar-log-truth-'));
    const truthFile = join(truthDir, 'printed');
    try {
      // Text makes the agent read 4 MiB pieces; one of them then is all random. Sent as one raw
      // block (4 MiB and a header), it is more than the 4 MiB window: a reader that acks whole
      // blocks only (cores before raw blocks came in pieces) could never get its end.
      const command = `{ yes compressible-line | head -c ${7 * MB}; head -c ${12 * MB} /dev/urandom; } | tee ${truthFile}`;
      const job = await host.submit({ command, executor: 'shell' });
      await host.waitFor(job.id);
      const log = await host.connect().readLog(job.id, { compression: 'deflate', ackBlocks: true });
      expect(log.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
      expect(log.data.equals(readFileSync(truthFile))).toBe(true);
      expect(log.blocks.raw).toBeGreaterThan(0);
    } finally {
      rmSync(truthDir, { recursive: true, force: true });
    }
  }, 30_000);

  it('random bytes arrive as the job wrote them, followed live and read again from offsets around piece edges', async () => {
    await using host = await startJobHost();
    // The job's own copy of what it printed: the reference the log is compared with.
    const truthDir = mkdtempSync(join(tmpdir(), 'hangar-log-truth-'));
    const truthFile = join(truthDir, 'printed');
    try {
      // 3 MiB and 11 bytes: the agent reads 1 MiB pieces and sends 256 KiB frames, so every
      // piece edge, a frame edge and a short last piece are crossed.
      const size = 3 * MB + 11;
      const job = await host.submit({ command: `head -c ${size} /dev/urandom | tee ${truthFile}`, executor: 'shell' });
      const live = await host.connect().readLog(job.id, { follow: true, compression: 'deflate' });
      expect(live.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
      const truth = readFileSync(truthFile);
      expect(truth.length).toBe(size);
      expect(live.data.equals(truth)).toBe(true);
      // The ended attempt, asked again on one link from offsets just before, at and after a piece edge.
      const client = host.connect();
      for (const from of [MB - 1, MB, 2 * MB + 5, size - 1]) {
        const again = await client.readLog(job.id, { from, compression: 'deflate' });
        expect(again.reason).toMatchObject({ code: 'log_end', exit_code: 0 });
        expect(again.data.equals(truth.subarray(from)), `from ${from}`).toBe(true);
      }
    } finally {
      rmSync(truthDir, { recursive: true, force: true });
    }
  });
});
