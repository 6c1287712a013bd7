import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  DRAIN_LOW_WATER,
  FRAME_TYPE,
  JOIN_FRAME_BYTES,
  JOINED_MESSAGE,
  JOINED_MESSAGE_BYTES,
  Mux,
  TERMINAL_INPUT_ACK_DELAY_MS,
  concatBytes,
  encodeFrame,
  wrapWebSocket,
  type CloseReason,
  type FrameTransport,
  UI_JOINED_FRAMES_PROTOCOL,
  UI_FRAMES_PROTOCOL,
  UI_WEBSOCKET_PROTOCOLS,
  chooseUiProtocol,
  uiWebSocketOptions,
  type LinkStream,
  type WebSocketLike,
} from '@hangar/shared';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/**
 * How one end of a UI WebSocket is made: `ui` as this build's page and core (they agree on joined
 * frames when the socket opens), `plain` as a build from before joined frames (the page offers no
 * subprotocol; the core's `ws` picks the first offered) or a host link.
 */
type End = 'ui' | 'plain';

/**
 * A WebSocket pair on loopback, each end wrapped as `ends` says, and the raw messages each end
 * receives (first byte and length), in order.
 */
async function pair(ends: { page: End; core: End } = { page: 'ui', core: 'ui' }) {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    ...(ends.core === 'ui' ? { handleProtocols: chooseUiProtocol } : {}),
  });
  const http = createServer();
  const peerReady = new Promise<WebSocket>((resolve) => {
    http.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, resolve));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const url = `ws://127.0.0.1:${port}/`;
  const ws =
    ends.page === 'ui'
      ? new WebSocket(url, [...UI_WEBSOCKET_PROTOCOLS], { perMessageDeflate: false })
      : new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const peer = await peerReady;
  const clientMessages: number[][] = [];
  const serverMessages: number[][] = [];
  ws.on('message', (data: Buffer) => clientMessages.push([data[0]!, data.length]));
  peer.on('message', (data: Buffer) => serverMessages.push([data[0]!, data.length]));
  const client = wrapWebSocket(ws, undefined, ends.page === 'ui' ? uiWebSocketOptions(ws.protocol) : {});
  const server = wrapWebSocket(peer, undefined, ends.core === 'ui' ? uiWebSocketOptions(peer.protocol) : {});
  cleanups.push(() => {
    ws.terminate();
    peer.terminate();
    wss.close();
    http.close();
  });
  return { client, server, ws, peer, clientMessages, serverMessages };
}

function muxes(client: FrameTransport, server: FrameTransport) {
  const page = new Mux(client, { role: 'client' });
  const core = new Mux(server, { role: 'agent' });
  cleanups.push(() => {
    page.dispose();
    core.dispose();
  });
  return { page, core };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

function received(stream: LinkStream) {
  const chunks: Uint8Array[] = [];
  stream.onData((data) => chunks.push(data.slice()));
  return {
    get bytes() {
      return chunks.reduce((n, c) => n + c.length, 0);
    },
    text: () => new TextDecoder().decode(concatBytes(chunks)),
  };
}

/**
 * A stand-in for `ws`'s WebSocket that keeps each send's completion callback until the test says
 * the message was written (complete()), so what the transport counts as queued is the test's to set.
 */
function heldSocket() {
  const written: Array<() => void> = [];
  const messages: Uint8Array[] = [];
  const socket = {
    binaryType: 'nodebuffer',
    bufferedAmount: 0,
    readyState: 1,
    send(data: Uint8Array, _options: object, cb: (error?: Error) => void) {
      messages.push(data);
      written.push(() => cb());
    },
    close() {},
    addEventListener() {},
  };
  return {
    socket: socket as unknown as WebSocketLike,
    messages,
    /** The oldest message still held is written. */
    complete: () => written.shift()!(),
  };
}

describe('WebSocket transport with joined frames (the web UI)', () => {
  it('drains once the bytes that made it high are written, small frames waiting to join counted', () => {
    const { socket, complete } = heldSocket();
    const transport = wrapWebSocket(socket, undefined, { joinFrames: true });
    let drains = 0;
    transport.onDrain(() => drains++);
    // Bulk just under the mark, then small frames of this run that take the count over it.
    const bulk = encodeFrame({ type: 'data', stream: 1, offset: 0, payload: new Uint8Array(DRAIN_LOW_WATER - 4096) });
    transport.send(bulk);
    const small = new Uint8Array(JOIN_FRAME_BYTES).fill(FRAME_TYPE.data);
    for (let i = 0; i < 8; i++) transport.send(small);
    // The mux sees the transport high here and waits for onDrain before it sends more data.
    expect(transport.bufferedAmount).toBeGreaterThanOrEqual(DRAIN_LOW_WATER);
    complete();
    expect(transport.bufferedAmount).toBeLessThan(DRAIN_LOW_WATER);
    expect(drains).toBe(1);
  });

  it("a keystroke's echo and the ack riding it reach the page as one message", async () => {
    const { client, server, clientMessages } = await pair();
    const { page, core } = muxes(client, server);
    const input = page.openStream();
    const output = core.openStream({ id: input.id });
    // The core's ack of a key waits to ride its echo (electron/core/src/api/terminals.ts).
    output.ackDelayMs = TERMINAL_INPUT_ACK_DELAY_MS;
    const typed = received(output);
    const shown = received(input);
    input.write(new TextEncoder().encode('k'), { now: true });
    await until(() => typed.bytes === 1, 'the key at the core');
    await settle();
    const before = clientMessages.length;
    output.write(new TextEncoder().encode('k'), { now: true });
    await until(() => shown.bytes === 1 && input.peerAckedOffset === 1, 'the echo and the ack of the key');
    await settle();
    const echoMessages = clientMessages.slice(before);
    expect(echoMessages).toHaveLength(1);
    expect(echoMessages[0]![0]).toBe(JOINED_MESSAGE);
    expect(shown.text()).toBe('k');
  });

  it('a frame alone goes as it is, and bulk goes alone after the small frames sent before it, in order', async () => {
    const { client, server, serverMessages } = await pair();
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame.slice()));
    const small = (n: number) => encodeFrame({ type: 'ping', nonce: n });
    client.send(small(1));
    await until(() => frames.length === 1, 'the first ping');
    expect(serverMessages).toEqual([[FRAME_TYPE.ping, 9]]);

    const bulk = encodeFrame({ type: 'data', stream: 1, offset: 0, payload: new Uint8Array(4096) });
    client.send(small(2));
    client.send(small(3));
    client.send(bulk);
    client.send(small(4));
    await until(() => frames.length === 5, 'the rest');
    expect(frames.map((frame) => frame[0])).toEqual([
      FRAME_TYPE.ping,
      FRAME_TYPE.ping,
      FRAME_TYPE.ping,
      FRAME_TYPE.data,
      FRAME_TYPE.ping,
    ]);
    expect(frames.slice(1, 3).map((frame) => frame[8])).toEqual([2, 3]);
    expect(new Uint8Array(frames[3]!)).toEqual(bulk);
    expect(serverMessages.slice(1)).toEqual([
      [JOINED_MESSAGE, 1 + 2 * (2 + 9)],
      [FRAME_TYPE.data, bulk.length],
      [FRAME_TYPE.ping, 9],
    ]);
  });

  it('a flood of small frames still sends nothing beyond the window until the consumer acks', async () => {
    const window = 4096;
    const { client, server, serverMessages } = await pair();
    const { page, core } = muxes(client, server);
    const local = page.openStream({ window, maxFrameBytes: 256 });
    const remote = core.openStream({ id: local.id, window, maxFrameBytes: 256 });
    remote.autoAck = false;
    const got = received(remote);
    const flood = new Uint8Array(256 * 1024).map((_, i) => i % 251);
    expect(local.write(flood)).toBe(false);
    await until(() => got.bytes === window, 'a window of data');
    await settle();
    expect(got.bytes).toBe(window);
    expect(local.sentOffset).toBe(window);
    // 16 frames of 256 bytes, joined: fewer messages than frames.
    expect(serverMessages.length).toBeLessThan(window / 256);
    remote.ack(window / 2);
    await until(() => got.bytes === window + window / 2, 'the acked amount more');
    await settle();
    expect(got.bytes).toBe(window + window / 2);
    remote.autoAck = true;
    remote.ack(got.bytes);
    await until(() => got.bytes === flood.length, 'the whole flood');
  });

  it('a malformed joined message closes the link with what was wrong, and delivers none of its frames', async () => {
    const { server, ws } = await pair();
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame));
    const closed = new Promise<CloseReason>((resolve) => server.onClose(resolve));
    const ping = encodeFrame({ type: 'ping', nonce: 1 });
    // A whole ping, then a length of 200 with 3 bytes behind it.
    ws.send(Uint8Array.of(JOINED_MESSAGE, 0, ping.length, ...ping, 0, 200, 1, 2, 3));
    const reason = await Promise.race([
      closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the link stayed open')), 5000)),
    ]);
    expect(reason.code).toBe('E_PROTOCOL');
    expect(reason.message).toContain('a joined message ends inside a frame');
    expect(frames).toHaveLength(0);
  });

  it('a joined message of exactly the limit, frames of exactly JOIN_FRAME_BYTES in it, arrives whole', async () => {
    const { client, server, serverMessages } = await pair();
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame.slice()));
    let closed = false;
    server.onClose(() => (closed = true));
    // 1 + 15 × (2 + 1024) + (2 + 991) = the limit: all 16 in one message.
    const sizes = [...Array<number>(15).fill(JOIN_FRAME_BYTES), 991];
    expect(1 + sizes.reduce((n, size) => n + 2 + size, 0)).toBe(JOINED_MESSAGE_BYTES);
    for (const [i, size] of sizes.entries()) client.send(new Uint8Array(size).fill(i + 1));
    await until(() => frames.length === sizes.length, 'the frames');
    expect(serverMessages).toEqual([[JOINED_MESSAGE, JOINED_MESSAGE_BYTES]]);
    expect(frames.map((frame) => [frame.length, frame[0]])).toEqual(sizes.map((size, i) => [size, i + 1]));
    expect(closed).toBe(false);
  });

  it.each([
    [
      'more bytes than a joined message holds',
      () => {
        // 1,600 whole pings, each a frame the link takes, in 17,601 bytes.
        const ping = encodeFrame({ type: 'ping', nonce: 1 });
        return Uint8Array.of(JOINED_MESSAGE, ...Array.from({ length: 1600 }, () => [0, ping.length, ...ping]).flat());
      },
      `over ${JOINED_MESSAGE_BYTES} bytes`,
    ],
    [
      'a frame bigger than any that joins',
      () => {
        const data = encodeFrame({ type: 'data', stream: 1, offset: 0, payload: new Uint8Array(JOIN_FRAME_BYTES) });
        return Uint8Array.of(JOINED_MESSAGE, data.length >> 8, data.length & 0xff, ...data);
      },
      `over ${JOIN_FRAME_BYTES} bytes`,
    ],
  ])('a joined message with %s is refused, none of its frames taken', async (_, message, why) => {
    const { server, ws } = await pair();
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame));
    const closed = new Promise<CloseReason>((resolve) => server.onClose(resolve));
    ws.send(message());
    const reason = await Promise.race([
      closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the link stayed open')), 5000)),
    ]);
    expect(reason.code).toBe('E_PROTOCOL');
    expect(reason.message).toContain(why);
    expect(frames).toHaveLength(0);
  });

  it('a page and core of this build agree on joined frames when the socket opens', async () => {
    const { ws, peer } = await pair();
    expect([ws.protocol, peer.protocol]).toEqual([UI_JOINED_FRAMES_PROTOCOL, UI_JOINED_FRAMES_PROTOCOL]);
  });

  it('a page of this build and a core from before joined frames (renderer/dist built again under it) send one frame a message', async () => {
    const { client, server, ws, clientMessages, serverMessages } = await pair({ page: 'ui', core: 'plain' });
    expect(ws.protocol).toBe(UI_FRAMES_PROTOCOL);
    const { page, core } = muxes(client, server);
    let closed: CloseReason | undefined;
    core.onClose((reason) => (closed = reason));
    // Small frames of one run each way: bytes on two streams.
    const toCore = [page.openStream(), page.openStream()];
    const atCore = toCore.map((stream) => core.openStream({ id: stream.id }));
    const gotByCore = atCore.map(received);
    const gotByPage = toCore.map(received);
    for (const stream of toCore) stream.write(new TextEncoder().encode('ping'));
    await until(
      () => gotByCore.every((got) => got.bytes === 4) || closed !== undefined,
      "the page's bytes at the core",
    );
    for (const stream of atCore) stream.write(new TextEncoder().encode('pong'));
    await until(
      () => gotByPage.every((got) => got.bytes === 4) || closed !== undefined,
      "the core's bytes at the page",
    );
    await settle();
    expect(closed).toBeUndefined();
    expect([...serverMessages, ...clientMessages].filter(([kind]) => kind === JOINED_MESSAGE)).toEqual([]);
  });

  it('a page from before joined frames gets one frame a message from a core of this build', async () => {
    const { client, server, ws, clientMessages } = await pair({ page: 'plain', core: 'ui' });
    expect(ws.protocol).toBe('');
    const frames: Uint8Array[] = [];
    client.onFrame((frame) => frames.push(frame));
    server.send(encodeFrame({ type: 'ping', nonce: 1 }));
    server.send(encodeFrame({ type: 'ping', nonce: 2 }));
    await until(() => frames.length === 2, 'both pings');
    expect(clientMessages).toEqual([
      [FRAME_TYPE.ping, 9],
      [FRAME_TYPE.ping, 9],
    ]);
  });

  it('a core that did not agree still splits what a page joins (the build that joined without asking)', async () => {
    const { server, peer, ws } = await pair({ page: 'plain', core: 'ui' });
    expect(peer.protocol).toBe('');
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame.slice()));
    const ping = encodeFrame({ type: 'ping', nonce: 7 });
    ws.send(Uint8Array.of(JOINED_MESSAGE, 0, ping.length, ...ping, 0, ping.length, ...ping));
    await until(() => frames.length === 2, 'both pings');
    expect(frames.map((frame) => [...frame])).toEqual([[...ping], [...ping]]);
  });

  it('without joinFrames (a host link) a joined message is no frame the link takes', async () => {
    const { server, ws } = await pair({ page: 'plain', core: 'plain' });
    const frames: Uint8Array[] = [];
    server.onFrame((frame) => frames.push(frame));
    const ping = encodeFrame({ type: 'ping', nonce: 1 });
    ws.send(Uint8Array.of(JOINED_MESSAGE, 0, ping.length, ...ping));
    await until(() => frames.length === 1, 'the message');
    // Handed on as it came: the mux refuses its unknown frame type.
    expect(frames[0]![0]).toBe(JOINED_MESSAGE);
  });
});
