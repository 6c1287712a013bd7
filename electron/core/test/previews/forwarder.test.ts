import { PREVIEW_EOF, PREVIEW_FRAME_BYTES, PREVIEW_STREAM_WINDOW, type LinkStream } from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMuxes } from '../../../../shared/test/support/mux-pair.js';
import { readBytes } from '../../../../test/support/socket-bytes.js';
import { PreviewForwarder, type ForwarderOptions, type PreviewLink } from '../../src/previews/forwarder.js';

/**
 * A preview's forwarder on this computer's loopback, its link a memory mux pair whose far end
 * (the test, standing in for the agent and its dev server) sees the bytes the browser sent and
 * answers: the browser's connection is read by the core's own read path (pooled buffers, straight
 * from the socket) whatever the reads look like.
 */

const quiet = pino({ level: 'silent' });
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The far end of one preview connection: what reached it, and its stream to answer on. */
interface Far {
  stream: LinkStream;
  received: Buffer[];
  bytes(): number;
  closed: Promise<string>;
}

async function startPreview(extra: Partial<ForwarderOptions> = {}) {
  const { client, agent } = connectMuxes(cleanups);
  const fars: Far[] = [];
  const waiting: Array<(far: Far) => void> = [];
  const link = {
    host: { name: 'box', address: 'box.invalid:1', embedded: false },
    link: () => Promise.resolve(client),
    call: (_method: string, params: { stream_id: number }) => {
      const stream = agent.openStream({
        id: params.stream_id,
        window: PREVIEW_STREAM_WINDOW,
        maxFrameBytes: PREVIEW_FRAME_BYTES,
      });
      const received: Buffer[] = [];
      let size = 0;
      stream.onData((data) => {
        received.push(Buffer.from(data));
        size += data.length;
      });
      const far: Far = {
        stream,
        received,
        bytes: () => size,
        closed: new Promise((resolve) => stream.onClose((reason) => resolve(reason.code))),
      };
      fars.push(far);
      waiting.shift()?.(far);
      return Promise.resolve({ source_port: 1 });
    },
  } as unknown as PreviewLink;
  const forwarder = await PreviewForwarder.start({
    host: 'box',
    port: 5173,
    connection: () => link,
    sameMachine: true,
    loopbackPeers: new Map(),
    logger: quiet,
    ...extra,
  });
  cleanups.push(() => forwarder.dispose());
  const open = async (allowHalfOpen = false): Promise<Socket> => {
    const socket = connect({ host: '127.0.0.1', port: forwarder.localPort, noDelay: true, allowHalfOpen });
    cleanups.push(() => void socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  };
  const nextFar = (): Promise<Far> => new Promise((resolve) => waiting.push(resolve));
  const head = (body: number) =>
    Buffer.from(`POST /up HTTP/1.1\r\nHost: localhost:${forwarder.localPort}\r\ncontent-length: ${body}\r\n\r\n`);
  return { fars, open, nextFar, head };
}

const until = async (done: () => boolean): Promise<void> => {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
};
const turns = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a preview connection from the browser', () => {
  it('carries a head split over reads, and a body merged with it and into big reads, intact both ways', async () => {
    const preview = await startPreview();
    const browser = await preview.open();
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const head = preview.head(body.length);
    const sent = Buffer.concat([head, body]);
    const reached = preview.nextFar();
    // The head in three reads (the request line cut in the middle), its end with the body's start.
    browser.write(sent.subarray(0, 7));
    await turns(20);
    browser.write(sent.subarray(7, head.length - 5));
    await turns(20);
    expect(preview.fars).toHaveLength(0); // no stream before the head is whole
    browser.write(sent.subarray(head.length - 5, head.length + 100));
    const far = await reached;
    // The rest in 64 KiB writes at once: reads of many of them, across several pooled buffers.
    for (let at = head.length + 100; at < sent.length; at += 64 * 1024)
      browser.write(sent.subarray(at, Math.min(at + 64 * 1024, sent.length)));
    await until(() => far.bytes() >= sent.length);
    expect(Buffer.concat(far.received).equals(sent)).toBe(true);

    const answer = randomBytes(2 * 1024 * 1024 + 5);
    const read = readBytes(browser, answer.length);
    far.stream.write(answer);
    expect((await read).equals(answer)).toBe(true);

    // A second request on the same connection, one small read.
    const again = Buffer.concat([preview.head(3), Buffer.from('abc')]);
    const before = far.bytes();
    browser.write(again);
    await until(() => far.bytes() >= before + again.length);
    expect(Buffer.concat(far.received).subarray(before).equals(again)).toBe(true);

    browser.end();
    expect(await far.closed).toBe(PREVIEW_EOF);
  });

  it('a browser gone before its head is whole opens nothing; one gone mid-answer closes its stream; the next is served intact', async () => {
    const preview = await startPreview();
    const early = await preview.open();
    early.write(preview.head(0).subarray(0, 20));
    await turns(20);
    early.destroy();
    await new Promise((resolve) => early.once('close', resolve));
    await turns(20);
    expect(preview.fars).toHaveLength(0);

    const leaving = await preview.open();
    const reached = preview.nextFar();
    leaving.write(preview.head(0));
    const far = await reached;
    const read = readBytes(leaving, 100 * 1024);
    far.stream.write(randomBytes(4 * 1024 * 1024));
    await read;
    leaving.destroy();
    expect(await far.closed).toBe(PREVIEW_EOF);

    // Buffers of the connections above went back to the pool: this one's bytes are its own.
    const next = await preview.open();
    const body = randomBytes(512 * 1024);
    const sent = Buffer.concat([preview.head(body.length), body]);
    const nextReached = preview.nextFar();
    next.write(sent);
    const nextFar = await nextReached;
    await until(() => nextFar.bytes() >= sent.length);
    expect(Buffer.concat(nextFar.received).equals(sent)).toBe(true);
  });

  it('a refused request is answered, and its connection goes once the browser closes, whatever the browser sent after it', async () => {
    const preview = await startPreview();
    const sockets = () => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length;
    const before = sockets();
    const browser = await preview.open();
    const answer = readBytes(browser, 1);
    // Another site's name (DNS rebinding), and a body after the head.
    browser.write(Buffer.from('POST / HTTP/1.1\r\nHost: evil.example\r\ncontent-length: 5\r\n\r\nhello'));
    expect((await answer).toString('latin1')).toMatch(/^HTTP\/1\.1 4\d\d/);
    browser.end();
    await new Promise((resolve) => browser.once('close', resolve));
    // The core saw the browser's end: its socket is gone too (no connection left open).
    await until(() => sockets() <= before);
    expect(preview.fars).toHaveLength(0);
  });

  it('a refused request whose browser never stops sending is closed by the core after a while', async () => {
    const preview = await startPreview({ answeredLingerMs: 100 });
    // Sends on after the core's end, as a browser with a body under way may.
    const browser = await preview.open(true);
    let gone = false;
    browser.on('error', () => undefined);
    browser.once('close', () => (gone = true));
    const answer = readBytes(browser, 1);
    browser.write(Buffer.from('POST / HTTP/1.1\r\nHost: evil.example\r\ncontent-length: 999999999999\r\n\r\n'));
    expect((await answer).toString('latin1')).toMatch(/^HTTP\/1\.1 4\d\d/);
    // A body without end: the core reads it into nothing, and not for ever (it used to until the test's timeout).
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    while (!gone) {
      if (!browser.write(chunk)) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(preview.fars).toHaveLength(0);
  }, 15_000);

  it('stops reading the browser while the host has not acked a window, and goes on once it does', async () => {
    const preview = await startPreview();
    const browser = await preview.open();
    const body = randomBytes(24 * 1024 * 1024);
    const sent = Buffer.concat([preview.head(body.length), body]);
    const reached = preview.nextFar();
    browser.write(sent);
    const far = await reached;
    far.stream.autoAck = false;
    await until(() => far.bytes() >= PREVIEW_STREAM_WINDOW);
    await turns(200);
    // No more than a window reached the host, and the rest waits in the browser (the kernel's
    // buffers on loopback hold a few MiB): the core read no further.
    expect(far.bytes()).toBe(PREVIEW_STREAM_WINDOW);
    expect(browser.writableLength).toBeGreaterThan(0);
    far.stream.autoAck = true;
    far.stream.ack(far.stream.recvOffset);
    await until(() => far.bytes() >= sent.length);
    expect(Buffer.concat(far.received).equals(sent)).toBe(true);
  });

  it('a browser that stops reading holds the host back to what the window and its socket take', async () => {
    const preview = await startPreview();
    const browser = await preview.open();
    const reached = preview.nextFar();
    browser.write(preview.head(0));
    const far = await reached;
    browser.pause();
    const answer = randomBytes(24 * 1024 * 1024);
    far.stream.write(answer);
    await until(() => far.stream.peerAckedOffset > 0);
    await turns(200);
    // The core acks only what the browser's socket took: the host still holds most of it.
    expect(far.stream.queuedBytes).toBeGreaterThan(0);
    expect(far.stream.peerAckedOffset).toBeLessThan(answer.length);
    const read = readBytes(browser, answer.length);
    browser.resume();
    expect((await read).equals(answer)).toBe(true);
  });
});
