import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BULK_FRAME_BYTES,
  concatBytes,
  createMemoryTransportPair,
  decodeFrame,
  FRAME_TYPE,
  encodeFrame,
  Mux,
  type CloseReason,
  type Frame,
  type FrameTransport,
  type LinkStream,
  type MemoryTransportOptions,
  type MuxOptions,
} from '@hangar/shared';
import { connectMuxes, openBoth } from './support/mux-pair.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  vi.useRealTimers();
});

const connect = (options: Parameters<typeof connectMuxes>[1] = {}) => connectMuxes(cleanups, options);

function collect(stream: LinkStream) {
  const chunks: Array<{ data: Uint8Array; offset: number }> = [];
  const closes: CloseReason[] = [];
  stream.onData((data, offset) => chunks.push({ data: data.slice(), offset }));
  stream.onClose((reason) => closes.push(reason));
  return {
    chunks,
    closes,
    get bytes() {
      return chunks.reduce((n, c) => n + c.data.length, 0);
    },
    text: () => new TextDecoder().decode(concatBytes(chunks.map((c) => c.data))),
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise<void>((resolve) => setTimeout(() => resolve(), 1));
  }
}

/**
 * Counts the callbacks run of the timers (setTimeout and setInterval) armed from now on for 100 ms
 * or more: what wakes a process between a person's keys (the memory transport's deliveries are
 * timers of 0 ms). Fake timers must be on; the spies go with the test's cleanups.
 */
function countSlowTimerFirings(): { count: number } {
  const counter = { count: 0 };
  const wrap = <F extends (callback: () => void, ms?: number) => unknown>(fake: F) =>
    ((callback: () => void, ms?: number) =>
      fake(
        ms !== undefined && ms >= 100
          ? () => {
              counter.count += 1;
              callback();
            }
          : callback,
        ms,
      )) as unknown as F;
  const fakeTimeout = globalThis.setTimeout;
  const fakeInterval = globalThis.setInterval;
  const spies = [
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(wrap(fakeTimeout)),
    vi.spyOn(globalThis, 'setInterval').mockImplementation(wrap(fakeInterval)),
  ];
  cleanups.push(() => {
    for (const spy of spies) spy.mockRestore();
  });
  return counter;
}

const settle = () => new Promise<void>((resolve) => setTimeout(() => resolve(), 30));
const text = (s: string) => new TextEncoder().encode(s);

describe('stream data', () => {
  it('bytes arrive in order, with the offset of each chunk, however they were chunked', async () => {
    const { client, agent } = connect({ mux: { maxDataFrameBytes: 1000 } });
    const { local, remote } = openBoth(client, agent);
    const received = collect(remote);
    const sent = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { numRuns: 20, seed: 7 });
    for (const part of sent) local.write(part);
    const expected = concatBytes(sent);
    await until(() => received.bytes === expected.length, 'all bytes');
    expect(concatBytes(received.chunks.map((c) => c.data))).toEqual(expected);
    let next = 0;
    for (const chunk of received.chunks) {
      expect(chunk.offset).toBe(next);
      expect(chunk.data.length).toBeLessThanOrEqual(1000);
      next += chunk.data.length;
    }
    await until(() => local.peerAckedOffset === expected.length, 'the sender sees everything acked');
    expect(remote.recvOffset).toBe(expected.length);
  });

  it('a Node Buffer written without transfer is copied: the caller may reuse it at once', async () => {
    const { client, agent } = connect();
    const { local, remote } = openBoth(client, agent);
    const received = collect(remote);
    // The write queues the bytes until a later turn; a reader that reuses its buffer overwrites
    // it before then. Buffer's own slice() is a view, so only a real copy keeps "first".
    const reused = Buffer.from('first');
    local.write(reused);
    reused.write('XXXXX');
    await until(() => received.bytes === 5, 'the bytes');
    expect(received.text()).toBe('first');
  });

  it('a stream opened at offset N starts counting at N (a resumed terminal)', async () => {
    const { client, agent } = connect();
    const local = client.openStream({ sendOffset: 5000 });
    const remote = agent.openStream({ id: local.id, recvOffset: 5000 });
    const received = collect(remote);
    local.write(text('hi'));
    await until(() => received.bytes === 2, 'data');
    expect(received.chunks[0]!.offset).toBe(5000);
    expect(local.sentOffset).toBe(5002);
    await until(() => local.peerAckedOffset === 5002, 'ack');
  });

  it('stream ids follow the role: odd for the client, even for the agent', () => {
    const { client, agent } = connect();
    expect([client.openStream().id, client.openStream().id]).toEqual([1, 3]);
    expect([agent.openStream().id, agent.openStream().id]).toEqual([2, 4]);
    expect(() => agent.openStream({ id: 2 })).toThrow(/already open/);
  });

  it('closing a stream delivers what was written first, then the reason with its exit code', async () => {
    const { client, agent } = connect();
    const { local, remote } = openBoth(client, agent, { window: 64 * 1024 });
    const received = collect(remote);
    local.write(new Uint8Array(200_000).fill(7));
    local.close({ code: 'session_ended', message: 'exited', exit_code: 3 });
    expect(local.closed).toBe(true);
    expect(local.write(text('late'))).toBe(false);
    await until(() => received.closes.length === 1, 'close');
    expect(received.bytes).toBe(200_000);
    expect(received.closes[0]).toEqual({ code: 'session_ended', message: 'exited', exit_code: 3 });
  });
});

describe('flow control', () => {
  it('a producer that waits for drain never holds more than the window in memory', async () => {
    const window = 64 * 1024;
    const { client, agent } = connect();
    const { local, remote } = openBoth(client, agent, { window });
    const received = collect(remote);
    const chunk = new Uint8Array(16 * 1024);
    let maxHeld = 0;
    for (let written = 0; written < 2 * 1024 * 1024; written += chunk.length) {
      const more = local.write(chunk);
      maxHeld = Math.max(maxHeld, local.queuedBytes + local.sentOffset - local.peerAckedOffset);
      if (!more) await new Promise<void>((resolve) => local.onDrain(resolve));
    }
    await until(() => received.bytes === 2 * 1024 * 1024, 'all bytes');
    expect(maxHeld).toBeLessThanOrEqual(window + chunk.length);
  });

  it('data sent on a stream takes its waiting ack along (an echo acks its keystroke)', async () => {
    const { client, agent, fromAgent } = connect();
    const { local, remote } = openBoth(client, agent);
    // Far longer than the test: the ack can only come with the echo.
    remote.ackDelayMs = 60_000;
    const keystroke = new Promise<void>((resolve) => remote.onData(() => resolve()));
    const echoed = collect(local);
    local.write(text('a'));
    await keystroke;
    remote.write(text('a'));
    await until(() => echoed.bytes === 1, 'the echo');
    await until(() => local.peerAckedOffset === 1, 'the ack of the keystroke');
    const sent = fromAgent.filter((frame) => frame.type === 'data' || frame.type === 'ack');
    expect(sent.map((frame) => frame.type)).toEqual(['data', 'ack']);
  });

  it('while typing, every ack rides a data frame; once typing stops the last one leaves within twice ackDelayMs', async () => {
    vi.useFakeTimers();
    const { client, agent, fromAgent, pair } = connect();
    const { local, remote } = openBoth(client, agent);
    local.ackDelayMs = 1000;
    remote.ackDelayMs = 1000;
    const fromClient: Frame[] = [];
    pair[1].onFrame((bytes) => fromClient.push(decodeFrame(bytes)));
    remote.onData((data) => remote.write(data.slice())); // the echo
    const echoed = collect(local);
    // A key every 50 ms for 3 s: the timers armed for the acks outlive the rides.
    for (let i = 1; i <= 60; i++) {
      local.write(text('a'));
      await vi.advanceTimersByTimeAsync(50);
      expect(echoed.bytes).toBe(i);
      expect(local.peerAckedOffset).toBe(i);
    }
    // No ack of its own: each one came right behind a data frame of its stream.
    for (const frames of [fromAgent, fromClient]) {
      const ofStream = frames.filter((f) => (f.type === 'data' || f.type === 'ack') && f.stream === local.id);
      expect(ofStream.filter((f) => f.type === 'ack').length).toBeGreaterThan(50);
      ofStream.forEach((frame, i) => {
        if (frame.type === 'ack') expect(ofStream[i - 1]?.type).toBe('data');
      });
    }
    // The last echo's ack has no keystroke to ride: it leaves on its timer, within two periods.
    expect(remote.peerAckedOffset).toBe(59);
    await vi.advanceTimersByTimeAsync(2000);
    expect(remote.peerAckedOffset).toBe(60);
  });

  it('with autoAck off, nothing beyond the window is sent until the consumer acks', async () => {
    const window = 64 * 1024;
    const { client, agent } = connect();
    const { local, remote } = openBoth(client, agent, { window });
    remote.autoAck = false;
    const received = collect(remote);
    expect(local.write(new Uint8Array(1024 * 1024))).toBe(false);
    await until(() => received.bytes === window, 'a window of data');
    await settle();
    expect(received.bytes).toBe(window);
    expect(local.sentOffset).toBe(window);
    expect(local.queuedBytes).toBe(1024 * 1024 - window);
    remote.ack(32 * 1024);
    await until(() => received.bytes === window + 32 * 1024, 'the acked amount more');
    await settle();
    expect(received.bytes).toBe(window + 32 * 1024);
  });

  it('a flood on one stream leaves a keystroke on another at most a few frames behind', async () => {
    // A slow link (one 32 KiB frame per delivery): whatever the mux hands over queues in the transport.
    const { client, agent, pair } = connect({ transport: { bytesPerBatch: 32 * 1024 } });
    // A large window so that only the scheduler, not credit, limits how much of the flood is ahead.
    const flood = openBoth(client, agent, { window: 4 * 1024 * 1024 });
    const keys = openBoth(client, agent);
    let floodFrames = 0;
    let keystrokeAfter: number | undefined;
    let floodFramesAtWrite = 0;
    pair[1].onFrame((bytes) => {
      const frame = decodeFrame(bytes);
      if (frame.type !== 'data') return;
      if (frame.stream === flood.local.id) floodFrames += 1;
      else keystrokeAfter = floodFrames - floodFramesAtWrite;
    });
    flood.local.write(new Uint8Array(16 * 1024 * 1024));
    await until(() => floodFrames >= 16, 'the flood to be flowing');
    floodFramesAtWrite = floodFrames;
    keys.local.write(text('x'));
    await until(() => keystrokeAfter !== undefined, 'the keystroke');
    // At most highWater (64 KiB) + one overshooting chunk in the transport, plus one round-robin turn.
    expect(keystrokeAfter).toBeLessThanOrEqual(4);
    expect(flood.local.sentOffset).toBeLessThan(16 * 1024 * 1024);
  });

  /**
   * A client mux on a memory transport that records each frame handed over with the bytes the
   * transport held then; `lane`: the transport declares a priority lane of that many bytes.
   * Nothing the client sends arrives until resume(): bulk keeps the transport full meanwhile.
   */
  async function fullTransport(lane: number | undefined) {
    const pair = createMemoryTransportPair();
    cleanups.push(() => pair.cut());
    const sent: Array<{ frame: Frame; held: number }> = [];
    const recording = new Proxy(pair[0], {
      get(target, key) {
        if (key === 'priorityFrameBytes') return lane;
        if (key === 'send')
          return (bytes: Uint8Array) => {
            sent.push({ frame: decodeFrame(bytes), held: target.bufferedAmount });
            target.send(bytes);
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const client = new Mux(recording, { role: 'client' });
    const agent = new Mux(pair[1], { role: 'agent' });
    cleanups.push(() => {
      client.dispose();
      agent.dispose();
    });
    const flood = openBoth(client, agent, { window: 4 * 1024 * 1024 });
    const keys = openBoth(client, agent);
    pair[0].silence();
    flood.local.write(new Uint8Array(1024 * 1024));
    await settle();
    expect(pair[0].bufferedAmount).toBeGreaterThanOrEqual(64 * 1024);
    const dataOf = (stream: LinkStream) => sent.filter((s) => s.frame.type === 'data' && s.frame.stream === stream.id);
    return { pair, client, agent, flood, keys, sent, dataOf };
  }

  it('a keystroke goes to a transport with a priority lane that bulk keeps full at once, where more bulk waits for it to drain', async () => {
    const { client, agent, flood, keys, dataOf } = await fullTransport(13 + 1024);
    const paste = openBoth(client, agent);
    const before = dataOf(flood.local).length;
    // Written first, in the same turn: more than one lane frame queued is not a keystroke.
    paste.local.write(new Uint8Array(1025), { now: true });
    keys.local.write(text('x'), { now: true });
    await until(() => dataOf(keys.local).length > 0, 'the keystroke handed over');
    expect(dataOf(keys.local)[0]!.held).toBeGreaterThanOrEqual(64 * 1024);
    expect(dataOf(flood.local).length).toBe(before);
    expect(dataOf(paste.local)).toHaveLength(0);
  });

  it('on a transport without a priority lane, a keystroke waits for the drain like bulk', async () => {
    const { pair, flood, keys, dataOf } = await fullTransport(undefined);
    const before = dataOf(flood.local).length;
    keys.local.write(text('x'), { now: true });
    // Let the link deliver again: the keystroke is handed over once the transport fell below the
    // mux's high water, not before.
    pair[0].resume();
    await until(() => dataOf(keys.local).length > 0, 'the keystroke handed over');
    expect(dataOf(keys.local)[0]!.held).toBeLessThan(64 * 1024);
    expect(dataOf(flood.local).length).toBeGreaterThan(before);
  });

  it('bulk both ways in big frames leaves a small round trip on another stream a bounded number of frames and turns', async () => {
    // Every delivery batch is one turn of the link; a batch carries at most 64 KiB (or one
    // bigger frame): a link much slower than the peers, so queues form in the mux, not past it.
    let turns = 0;
    const { client, agent, pair } = connect({
      transport: {
        bytesPerBatch: 64 * 1024,
        schedule: (deliver) =>
          setImmediate(() => {
            turns += 1;
            deliver();
          }),
      },
    });
    const window = 8 * 1024 * 1024;
    const download = agent.openStream({ window, maxFrameBytes: BULK_FRAME_BYTES });
    client.openStream({ id: download.id, window });
    const upload = client.openStream({ window, maxFrameBytes: BULK_FRAME_BYTES });
    agent.openStream({ id: upload.id, window });
    const near = client.openStream();
    const far = agent.openStream({ id: near.id });
    far.onData((data) => far.write(data)); // the echo: a keystroke and its character
    const bulkFrames = { toAgent: 0, toClient: 0 };
    pair[1].onFrame((bytes) => {
      if (isDataOf(bytes, upload.id)) bulkFrames.toAgent += 1;
    });
    pair[0].onFrame((bytes) => {
      if (isDataOf(bytes, download.id)) bulkFrames.toClient += 1;
    });
    download.write(new Uint8Array(64 * 1024 * 1024), { transfer: true });
    upload.write(new Uint8Array(64 * 1024 * 1024), { transfer: true });
    await until(() => bulkFrames.toAgent >= 8 && bulkFrames.toClient >= 8, 'both transfers to be flowing');

    const trips: Array<{ turns: number; toAgent: number; toClient: number }> = [];
    for (let i = 0; i < 5; i++) {
      const start = { turns, ...bulkFrames };
      const echoed = new Promise<void>((resolve) => {
        const sub = near.onData(() => {
          void sub.dispose();
          resolve();
        });
      });
      near.write(text('x'));
      await echoed;
      trips.push({
        turns: turns - start.turns,
        toAgent: bulkFrames.toAgent - start.toAgent,
        toClient: bulkFrames.toClient - start.toClient,
      });
    }
    // Each way, ahead of the small frame: what the transport holds (one 256 KiB chunk past its
    // 64 KiB high water) and one round-robin turn; the round trip spans both halves, so a
    // direction's count includes the frames that pass while the echo travels the other way:
    // measured 4-5 frames and 16-19 turns (one delivery per end per turn). Without the
    // scheduler's high water the whole backlog (hundreds of frames) would be ahead.
    for (const trip of trips) {
      expect(trip.toAgent).toBeLessThanOrEqual(6);
      expect(trip.toClient).toBeLessThanOrEqual(6);
      expect(trip.turns).toBeLessThanOrEqual(24);
    }
    // The transfers were still running throughout: the bound was measured under load.
    expect(download.sentOffset).toBeLessThan(64 * 1024 * 1024);
    expect(upload.sentOffset).toBeLessThan(64 * 1024 * 1024);
  });

  it('control messages overtake data already queued', async () => {
    const { client, agent } = connect({ transport: { bytesPerBatch: 32 * 1024 } });
    const { local, remote } = openBoth(client, agent, { window: 4 * 1024 * 1024 });
    const received = collect(remote);
    let bytesWhenControlArrived: number | undefined;
    agent.onControl((json) => {
      expect(JSON.parse(json)).toEqual({ hello: 1 });
      bytesWhenControlArrived = received.bytes;
    });
    local.write(new Uint8Array(2 * 1024 * 1024));
    await until(() => received.bytes >= 128 * 1024, 'data flowing');
    const bytesAtSend = received.bytes;
    client.sendControl('{"hello":1}');
    await until(() => bytesWhenControlArrived !== undefined, 'the control message');
    expect(bytesWhenControlArrived! - bytesAtSend).toBeLessThanOrEqual(96 * 1024);
  });
});

describe('handlers', () => {
  it('control messages sent before anyone listened are handed to the first listener, in order', async () => {
    const { client, agent } = connect();
    client.sendControl('{"n":1}');
    client.sendControl('{"n":2}');
    await settle();
    const seen: string[] = [];
    agent.onControl((json) => seen.push(json));
    expect(seen).toEqual(['{"n":1}', '{"n":2}']);
  });

  it('frames a transport replays while the mux subscribes are not lost', () => {
    // The WebSocket adapter hands over frames that arrived before anyone listened, synchronously.
    const replayed = [encodeFrame({ type: 'control', json: '{"hello":"early"}' })];
    const transport: FrameTransport = {
      send: () => undefined,
      bufferedAmount: 0,
      onFrame: (listener) => {
        for (const frame of replayed.splice(0)) listener(frame);
        return { dispose: () => undefined };
      },
      onDrain: () => ({ dispose: () => undefined }),
      onClose: () => ({ dispose: () => undefined }),
      close: () => undefined,
      closed: false,
    };
    const mux = new Mux(transport, { role: 'client' });
    cleanups.push(() => mux.dispose());
    const seen: string[] = [];
    mux.onControl((json) => seen.push(json));
    expect(seen).toEqual(['{"hello":"early"}']);
  });

  it('a data handler that throws ends only its own stream, with the error as the reason', async () => {
    const { client, agent } = connect();
    const broken = openBoth(client, agent);
    const fine = openBoth(client, agent);
    broken.remote.onData(() => {
      throw new Error('renderer exploded');
    });
    const brokenLocal = collect(broken.local);
    const fineRemote = collect(fine.remote);
    broken.local.write(text('a'));
    fine.local.write(text('b'));
    await until(() => brokenLocal.closes.length === 1 && fineRemote.text() === 'b', 'close and data');
    expect(brokenLocal.closes[0]).toMatchObject({
      code: 'E_INTERNAL',
      message: expect.stringContaining('renderer exploded'),
    });
    expect(fine.remote.closed).toBe(false);
  });

  it('a transport that refuses an ack ends the link, saying which frame could not be sent', async () => {
    const pair = createMemoryTransportPair();
    let refuse = false;
    const refusing: FrameTransport = new Proxy(pair[1], {
      get(target, key) {
        if (key === 'send')
          return (bytes: Uint8Array) => {
            if (refuse) throw new Error('socket is gone');
            target.send(bytes);
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const client = new Mux(pair[0], { role: 'client' });
    const agent = new Mux(refusing, { role: 'agent' });
    cleanups.push(() => {
      client.dispose();
      agent.dispose();
    });
    const reasons: CloseReason[] = [];
    agent.onClose((reason) => reasons.push(reason));
    const { local } = openBoth(client, agent);
    refuse = true;
    local.write(text('key'), { now: true });
    await until(() => reasons.length === 1, 'the agent link closed');
    expect(reasons[0]).toEqual({
      code: 'E_INTERNAL',
      message: expect.stringMatching(/^could not send an ack frame: socket is gone/),
    });
  });
});

describe('protocol violations', () => {
  it('data at the wrong offset closes only that stream, and the other stream keeps working', async () => {
    const { client, agent, inject } = connect();
    const bad = openBoth(client, agent);
    const good = openBoth(client, agent);
    const badLocal = collect(bad.local);
    const badRemote = collect(bad.remote);
    const goodRemote = collect(good.remote);
    inject({ type: 'data', stream: bad.local.id, offset: 100, payload: text('oops') });
    await until(() => badLocal.closes.length === 1, 'the peer told about the bad stream');
    expect(badRemote.closes[0]).toMatchObject({ code: 'E_PROTOCOL', message: expect.stringContaining('offset 100') });
    expect(badLocal.closes[0]).toMatchObject({ code: 'E_PROTOCOL' });
    good.local.write(text('still here'));
    await until(() => goodRemote.text() === 'still here', 'the good stream');
    expect(agent.closed).toBe(false);
  });

  it('data for a stream nobody opened is refused with a close frame for that id', async () => {
    const { agent, inject, fromAgent } = connect();
    inject({ type: 'data', stream: 99, offset: 0, payload: text('who?') });
    inject({ type: 'data', stream: 99, offset: 4, payload: text('hello?') });
    await until(() => fromAgent.some((f) => f.type === 'close' && f.stream === 99), 'close 99');
    await settle();
    // One refusal per stream, not one per frame of a flood.
    expect(fromAgent.filter((f) => f.type === 'close')).toHaveLength(1);
    const close = fromAgent.find((f) => f.type === 'close')!;
    expect(JSON.parse((close as { reason: string }).reason)).toMatchObject({ code: 'E_PROTOCOL' });
    expect(agent.closed).toBe(false);
  });

  it('a peer that ignores the window gets its stream closed', async () => {
    const { client, agent, inject } = connect();
    const local = client.openStream();
    const remote = agent.openStream({ id: local.id, window: 1000 });
    remote.autoAck = false;
    const received = collect(remote);
    inject({ type: 'data', stream: local.id, offset: 0, payload: new Uint8Array(600) });
    inject({ type: 'data', stream: local.id, offset: 600, payload: new Uint8Array(600) });
    await until(() => received.closes.length === 1, 'close');
    expect(received.bytes).toBe(600);
    expect(received.closes[0]).toMatchObject({ code: 'E_PROTOCOL', message: expect.stringContaining('window') });
  });

  it('an ack for bytes never sent closes the stream', async () => {
    const { client, agent, inject } = connect();
    const { remote } = openBoth(client, agent);
    const received = collect(remote);
    inject({ type: 'ack', stream: remote.id, offset: 10 });
    await until(() => received.closes.length === 1, 'close');
    expect(received.closes[0]).toMatchObject({ code: 'E_PROTOCOL', message: expect.stringContaining('ack') });
  });

  it('a malformed frame closes the whole link, and both sides learn why', async () => {
    const { client, agent, inject } = connect();
    const { local, remote } = openBoth(client, agent);
    const reasons: Record<string, CloseReason> = {};
    agent.onClose((r) => (reasons.agent = r));
    client.onClose((r) => (reasons.client = r));
    remote.onClose((r) => (reasons.stream = r));
    local.onClose((r) => (reasons.clientStream = r));
    inject(Uint8Array.of(0x42, 1, 2, 3));
    await until(() => reasons.client !== undefined, 'the client to learn');
    expect(reasons.agent).toMatchObject({ code: 'E_PROTOCOL', message: expect.stringContaining('malformed') });
    expect(reasons.stream).toEqual(reasons.agent);
    expect(reasons.client).toEqual(reasons.agent);
    expect(reasons.clientStream).toEqual(reasons.agent);
  });

  it('a close for an unknown stream is ignored and a ping is answered with the same nonce', async () => {
    const { agent, inject, fromAgent } = connect();
    inject({ type: 'close', stream: 77, reason: '{"code":"x","message":"y"}' });
    inject({ type: 'ping', nonce: 123456789 });
    await until(() => fromAgent.some((f) => f.type === 'pong'), 'pong');
    expect(fromAgent).toContainEqual({ type: 'pong', nonce: 123456789 });
    expect(agent.closed).toBe(false);
  });

  it('random frames never throw out of the mux and never break a healthy stream unless the link closes', async () => {
    const healthy = 1;
    const targetsHealthy = (bytes: Uint8Array) => {
      try {
        const frame = decodeFrame(bytes);
        return 'stream' in frame && frame.stream === healthy;
      } catch {
        return false; // undecodable garbage cannot target a stream
      }
    };
    // Stream 0 and undecodable bytes end the link; keep them rare so most runs test the healthy stream.
    const stream = fc.oneof(
      { arbitrary: fc.constant(0), weight: 1 },
      { arbitrary: fc.integer({ min: 2, max: 8 }), weight: 20 },
    );
    const offset = fc.integer({ min: 0, max: 1 << 20 });
    const frame: fc.Arbitrary<Uint8Array> = fc.oneof(
      fc
        .record({ stream, offset, payload: fc.uint8Array({ maxLength: 64 }) })
        .map((f) => encodeFrame({ type: 'data', ...f })),
      fc.record({ stream, offset }).map((f) => encodeFrame({ type: 'ack', ...f })),
      fc.record({ stream, reason: fc.string() }).map((f) => encodeFrame({ type: 'close', ...f })),
      fc.string().map((json) => encodeFrame({ type: 'control', json })),
      offset.map((nonce) => encodeFrame({ type: 'ping', nonce })),
      offset.map((nonce) => encodeFrame({ type: 'pong', nonce })),
      { arbitrary: fc.uint8Array({ maxLength: 40 }).filter((b) => !targetsHealthy(b)), weight: 1 },
    );
    let linkSurvived = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { maxLength: 12 }), async (frames) => {
        const { client, agent, inject } = connect();
        const local = client.openStream();
        const remote = agent.openStream({ id: local.id });
        const there = collect(remote);
        const back = collect(local);
        for (const bytes of frames) inject(bytes);
        local.write(text('ping'));
        remote.write(text('pong'));
        await until(() => agent.closed || (there.text() === 'ping' && back.text() === 'pong'), 'round trip');
        if (!agent.closed) {
          expect(remote.closed || local.closed).toBe(false);
          linkSurvived += 1;
        }
        for (const cleanup of cleanups.splice(0)) cleanup();
      }),
      { numRuns: 100 },
    );
    // The property is only worth something if many runs kept the link up with garbage on it.
    expect(linkSurvived).toBeGreaterThan(20);
  });
});

describe('liveness', () => {
  it('a silent peer is noticed within deadAfterMs plus one check, and the link closes with E_TIMEOUT', async () => {
    vi.useFakeTimers();
    const { client, agent, pair } = connect();
    const { local } = openBoth(client, agent);
    const reasons: CloseReason[] = [];
    client.onClose((r) => reasons.push(r));
    const streamClosed = collect(local).closes;
    await vi.advanceTimersByTimeAsync(5000);
    expect(client.closed).toBe(false);
    pair.silence();
    // The last ping arrived at most 3 s before the silence began: no alarm before 3 s.
    await vi.advanceTimersByTimeAsync(2900);
    expect(client.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(100 + 4000);
    expect(reasons).toEqual([{ code: 'E_TIMEOUT', message: 'link silent for 6 s' }]);
    expect(streamClosed).toEqual(reasons);
  });

  it("a busy link's heartbeat checks once a second on each end and sends no ping", async () => {
    vi.useFakeTimers();
    // Stream ack timers below 100 ms are not counted: these are the heartbeats' checks.
    const firings = countSlowTimerFirings();
    const { client, agent, fromAgent, pair } = connect();
    const { local, remote } = openBoth(client, agent);
    const fromClient: Frame[] = [];
    pair[1].onFrame((bytes) => fromClient.push(decodeFrame(bytes)));
    remote.onData((data) => remote.write(data.slice()));
    for (let i = 1; i <= 100; i++) {
      local.write(text('a'));
      await vi.advanceTimersByTimeAsync(200);
    }
    expect(client.closed || agent.closed).toBe(false);
    expect([...fromAgent, ...fromClient].filter((f) => f.type === 'ping')).toEqual([]);
    // 20 s of a key and its echo every 200 ms: a check per second per end (a check every 500 ms
    // was 40 per end).
    expect(firings.count).toBeLessThanOrEqual(2 * 21);
  });

  it('a peer that stops mid-typing is declared dead 6-7 s after its last frame', async () => {
    vi.useFakeTimers();
    const { client, agent, pair } = connect();
    const { local, remote } = openBoth(client, agent);
    remote.onData((data) => remote.write(data.slice()));
    const reasons: CloseReason[] = [];
    client.onClose((r) => reasons.push(r));
    for (let i = 1; i <= 17; i++) {
      local.write(text('a'));
      await vi.advanceTimersByTimeAsync(200);
    }
    // The last echo arrived within 1 ms of the last key; from now on the agent's frames are lost.
    pair[1].silence();
    local.write(text('a'));
    await vi.advanceTimersByTimeAsync(6000 - 200 - 2);
    expect(client.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1000 + 4);
    expect(reasons).toEqual([{ code: 'E_TIMEOUT', message: 'link silent for 6 s' }]);
  });

  it('pings keep an idle but alive link open', async () => {
    vi.useFakeTimers();
    const { client, agent, pair } = connect();
    const pingsBefore = pair[0].framesSent;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.closed).toBe(false);
    expect(agent.closed).toBe(false);
    // One ping about every heartbeat interval (2 s), plus the pongs answering the agent's.
    expect(pair[0].framesSent - pingsBefore).toBeGreaterThanOrEqual(20);
  });

  it('ping() resolves when the peer answers it, and rejects when the link closes first', async () => {
    const { client, agent, pair } = connect();
    await client.ping();
    const { local } = openBoth(client, agent);
    expect(client.openStreamCount).toBe(1);
    local.close({ code: 'closed', message: 'done' });
    expect(client.openStreamCount).toBe(0);
    pair[1].onFrame(() => undefined);
    const unanswered = client.ping();
    pair.cut();
    await expect(unanswered).rejects.toThrow(/link closed before the pong/);
    await expect(client.ping()).rejects.toThrow(/link is closed/);
  });

  it('the transport dropping ends the link and its streams with the transport reason', async () => {
    const { client, agent, pair } = connect();
    const { local } = openBoth(client, agent);
    const closes = collect(local).closes;
    pair.cut();
    expect(client.closed && agent.closed).toBe(true);
    expect(closes).toEqual([{ code: 'E_UNAVAILABLE', message: 'connection lost' }]);
    expect(() => client.openStream()).toThrow(/link is closed/);
  });

  it('closing the link ends every stream with the link reason on both sides', async () => {
    const { client, agent } = connect();
    const { local, remote } = openBoth(client, agent);
    const here = collect(local).closes;
    const there = collect(remote).closes;
    client.close({ code: 'bye', message: 'user quit' });
    await until(() => there.length === 1, 'the peer to learn');
    expect(here).toEqual([{ code: 'bye', message: 'user quit' }]);
    expect(there).toEqual(here);
  });
});

/** A data frame of that stream (the frame's stream id is read only where the type has one). */
function isDataOf(bytes: Uint8Array, stream: number): boolean {
  if (bytes[0] !== FRAME_TYPE.data) return false;
  const frame = decodeFrame(bytes);
  return frame.type === 'data' && frame.stream === stream;
}
