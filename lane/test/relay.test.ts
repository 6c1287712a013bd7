/**
 * The native relay through @hangar/lane's public API, on real loopback TCP sockets adopted with
 * adoptSocket (and a node-pty pty running cat): two relays back to back, and one relay against a
 * lane end the test speaks itself with sealRecord/RecordReader.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import fc from 'fast-check';
import { spawn as spawnPty, type IPty } from 'node-pty';
import { describe, expect, it } from 'vitest';
import {
  RecordReader,
  RecordType,
  deriveLaneKeys,
  sealRecord,
  type NativeLanes,
  type Relay,
  type RelayOptions,
} from '@hangar/lane';
import {
  PeerLane,
  closed,
  hashUntilEnd,
  openFds,
  readBytes,
  readUntilEnd,
  sendRandom,
  useNativeRelay,
} from './support/sockets.js';

let lanes: NativeLanes;
const secret = randomBytes(32);
const grantId = randomBytes(16);
const { sockets, relays, pair } = useNativeRelay((loaded) => (lanes = loaded));

/** A local TCP connection: the app's end, and the relay's fd for the other end. */
async function local(): Promise<{ app: Socket; fd: number }> {
  const [app, relayEnd] = await pair();
  return { app, fd: lanes.adoptSocket(relayEnd).fd };
}

function start(
  options: Omit<RelayOptions, 'keys' | 'sendSeq' | 'receiveSeq' | 'closeLocal'> & Partial<RelayOptions>,
  role: 'client' | 'agent',
  laneNo = 1n,
): Relay {
  const relay = lanes.relay({
    keys: deriveLaneKeys(secret, grantId, laneNo, role),
    sendSeq: 0n,
    receiveSeq: 0n,
    closeLocal: true,
    ...options,
  });
  relays.push(relay);
  return relay;
}

/** A relay of the `file` kind on the lane socket `net`: `fd` is both its local read and write end. */
function startFile(net: Socket, fd: number, file: RelayOptions['file'], role: 'client' | 'agent'): Relay {
  return start({ net: lanes.adoptSocket(net).fd, localRead: fd, localWrite: fd, localKind: 'file', file }, role);
}

/** app A ↔ relay A ↔ lane ↔ relay B ↔ app B. */
async function backToBack(laneNo = 1n) {
  const [laneA, laneB] = await pair();
  const a = await local();
  const b = await local();
  const relayA = start(
    { net: lanes.adoptSocket(laneA).fd, localRead: a.fd, localWrite: a.fd, localKind: 'socket' },
    'client',
    laneNo,
  );
  const relayB = start(
    { net: lanes.adoptSocket(laneB).fd, localRead: b.fd, localWrite: b.fd, localKind: 'socket' },
    'agent',
    laneNo,
  );
  return { appA: a.app, appB: b.app, relayA, relayB };
}

/** app ↔ relay (the agent's side) ↔ lane ↔ the test's PeerLane (the client's keys). */
async function againstPeer(options: Partial<RelayOptions> = {}) {
  const [peerEnd, laneEnd] = await pair();
  const { app, fd } = await local();
  const relay = start(
    { net: lanes.adoptSocket(laneEnd).fd, localRead: fd, localWrite: fd, localKind: 'socket', ...options },
    'agent',
  );
  const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
  return { app, relay, peer, peerEnd };
}

describe('two relays back to back', () => {
  it('carry 32 MiB of random bytes both ways at once, then end with EOF both ways', async () => {
    const { appA, appB, relayA, relayB } = await backToBack();
    const size = 32 << 20;
    const atB = hashUntilEnd(appB);
    const atA = hashUntilEnd(appA);
    const [sentByA, sentByB] = await Promise.all([sendRandom(appA, size), sendRandom(appB, size)]);
    expect(await atB).toEqual({ hash: sentByA, length: size });
    expect(await atA).toEqual({ hash: sentByB, length: size });
    expect(await relayA.ended).toEqual({ how: 'eof', bytesIn: size, bytesOut: size });
    expect(await relayB.ended).toEqual({ how: 'eof', bytesIn: size, bytesOut: size });
  });

  it('an HTTP-like client that shuts its write side still gets the whole answer', async () => {
    const { appA: client, appB: server, relayA, relayB } = await backToBack();
    const request = readUntilEnd(server);
    client.end('GET / HTTP/1.0\r\n\r\n');
    expect((await request).data.toString()).toBe('GET / HTTP/1.0\r\n\r\n');
    const answer = readUntilEnd(client);
    const body = randomBytes(3 << 20);
    server.end(body);
    expect((await answer).data.equals(body)).toBe(true);
    expect((await relayA.ended).how).toBe('eof');
    expect((await relayB.ended).how).toBe('eof');
  });

  it('close() while a record waits for a local side that reads nothing: bytesIn counts only what reached it', async () => {
    const { app, relay, peer, peerEnd } = await againstPeer();
    app.pause();
    // Records until the relay stops reading the lane: it reads on only once the record it opened is
    // written locally, so one is then opened and waiting (the local side's buffers full).
    const record = randomBytes(65536);
    for (let sent = 0; peerEnd.writableLength === 0 && sent < 2000; sent++) {
      peer.send(RecordType.Data, record);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(peerEnd.writableLength).toBeGreaterThan(0);
    relay.close(Buffer.from('{"code":"closed","message":"link closed"}'));
    expect((await peer.next())?.type).toBe(RecordType.Close);
    peerEnd.end();
    const end = await relay.ended;
    const reading = readUntilEnd(app);
    app.resume();
    const received = await reading;
    // A follower resumes from bytesIn: a record counted but never written would be a gap in its log.
    expect(end.how).toBe('closed_here');
    expect(end.bytesIn).toBe(received.data.length);
  });

  it('close(reason) arrives on the other side as closed with that reason, after what was queued', async () => {
    const { appB, relayA, relayB } = await backToBack();
    const got = readBytes(appB, 5);
    relayA.write(Buffer.from('queue'));
    relayA.close(Buffer.from('{"code":"ended"}'));
    expect((await got).toString()).toBe('queue');
    const endB = await relayB.ended;
    expect(endB).toMatchObject({ how: 'closed', bytesIn: 5 });
    expect(endB.how === 'closed' && endB.reason.toString()).toBe('{"code":"ended"}');
    expect(await relayA.ended).toEqual({ how: 'closed_here', bytesIn: 0, bytesOut: 5 });
  });

  it('leaves no fd open once both have ended and the apps closed', async () => {
    const before = openFds();
    const { appA, appB, relayA, relayB } = await backToBack();
    const atB = hashUntilEnd(appB);
    const atA = hashUntilEnd(appA);
    await Promise.all([sendRandom(appA, 100_000), sendRandom(appB, 100_000)]);
    await Promise.all([atA, atB, relayA.ended, relayB.ended]);
    await Promise.all(sockets.splice(0).map(closed));
    expect(openFds()).toBe(before);
  });
});

describe('a relay against a lane end written with sealRecord', () => {
  it('delivers records written in any chunking, fromNet included, exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 70_000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 100_000 }), { maxLength: 12 }),
        fc.nat(),
        async (payloads, cuts, handOver) => {
          const peerKeys = deriveLaneKeys(secret, grantId, 1n, 'client');
          const [peerEnd, laneEnd] = await pair();
          const { app, fd } = await local();
          const peer = new PeerLane(peerEnd, peerKeys);
          const chunks = payloads.flatMap((p) => {
            const out: Uint8Array[] = [];
            for (let at = 0; at < p.length; at += 65536) out.push(p.subarray(at, at + 65536));
            return out.length === 0 ? [p] : out;
          });
          const stream = Buffer.concat([
            ...chunks.map((c) => peer.seal(RecordType.Data, c)),
            peer.seal(RecordType.Eof),
          ]);
          const expected = Buffer.concat(chunks);
          // The first `fromNet` bytes are handed over as already read (whole or cut records).
          const fromNet = stream.subarray(0, handOver % stream.length);
          const relay = start(
            { net: lanes.adoptSocket(laneEnd).fd, localRead: fd, localWrite: fd, localKind: 'socket', fromNet },
            'agent',
          );
          const got = readUntilEnd(app);
          let from = fromNet.length;
          for (const cut of cuts) {
            const to = Math.min(stream.length, from + cut);
            peerEnd.write(stream.subarray(from, to));
            from = to;
            await new Promise((resolve) => setImmediate(resolve));
          }
          peerEnd.write(stream.subarray(from));
          const { data } = await got;
          expect(data.equals(expected)).toBe(true);
          app.end();
          expect(await peer.next()).toEqual({ type: RecordType.Eof, payload: Buffer.alloc(0) });
          peerEnd.end();
          expect(await relay.ended).toEqual({ how: 'eof', bytesIn: expected.length, bytesOut: 0 });
        },
      ),
      { numRuns: 15 },
    );
  });

  it('a changed bit or a cut anywhere: an error, and exactly the records before it delivered (any chunking)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 65536, maxLength: 65536 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(),
        fc.nat(7),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 8 }),
        async (payloads, where, bit, cut, cuts) => {
          const { app, peer, relay, peerEnd } = await againstPeer();
          app.resume();
          const records = [...payloads.map((p) => peer.seal(RecordType.Data, p)), peer.seal(RecordType.Eof)];
          let stream = Buffer.concat(records);
          const at = where % stream.length;
          if (cut) stream = stream.subarray(0, at);
          else stream[at]! ^= 1 << bit;
          // The records wholly before the changed byte (or the cut) are delivered; nothing after.
          let delivered = 0;
          for (let i = 0, start = 0; i < payloads.length && start + records[i]!.length <= at; i++) {
            delivered += payloads[i]!.length;
            start += records[i]!.length;
          }
          let from = 0;
          for (const size of cuts) {
            peerEnd.write(stream.subarray(from, from + size));
            from = Math.min(stream.length, from + size);
            await new Promise((resolve) => setImmediate(resolve));
          }
          peerEnd.end(stream.subarray(from));
          const end = await relay.ended;
          expect(end.how).toBe('error');
          expect(end.how === 'error' && end.message).toMatch(cut ? /^truncated: / : /^(tampered|too_big|truncated): /);
          expect(end.bytesIn).toBe(delivered);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('opens records at the length limits (17 and 65,553) and refuses 16, 65,554 and lengths near 2^32', async () => {
    const { app, peer, relay, peerEnd } = await againstPeer();
    const full = randomBytes(65536);
    const got = readBytes(app, full.length + 1);
    expect(peer.send(RecordType.Data, new Uint8Array(0)).readUInt32BE(0)).toBe(17);
    expect(peer.send(RecordType.Data, full).readUInt32BE(0)).toBe(65553);
    peer.send(RecordType.Data, Buffer.from('!'));
    expect((await got).equals(Buffer.concat([full, Buffer.from('!')]))).toBe(true);
    peer.send(RecordType.Eof);
    app.end();
    expect((await peer.next())?.type).toBe(RecordType.Eof);
    peerEnd.end();
    expect(await relay.ended).toEqual({ how: 'eof', bytesIn: 65537, bytesOut: 0 });

    for (const length of [0, 16, 65554, 0x7fffffff, 0x80000000, 0xffffffef, 0xffffffff]) {
      const bad = await againstPeer();
      const record = Buffer.alloc(4 + 64);
      record.writeUInt32BE(length, 0);
      bad.peerEnd.write(record);
      const end = await bad.relay.ended;
      expect(end.how === 'error' && end.message).toBe(`too_big: record 0 has length ${length}, outside 17..65553`);
    }
  });

  it('uses the last sequence number each way and then ends with bad_record, never wrapping to a used nonce', async () => {
    const max = (1n << 64n) - 1n;
    const peerKeys = deriveLaneKeys(secret, grantId, 1n, 'client');
    const [peerEnd, laneEnd] = await pair();
    const { app, fd } = await local();
    const relay = start(
      { net: lanes.adoptSocket(laneEnd).fd, localRead: fd, localWrite: fd, localKind: 'socket', sendSeq: max },
      'agent',
    );
    const reader = new RecordReader(peerKeys.receive, max);
    const opened = new Promise<Buffer>((resolve) =>
      peerEnd.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        const record = reader.next();
        if (record) resolve(record.payload);
      }),
    );
    app.write('last');
    expect((await opened).toString()).toBe('last'); // record 2^64-1
    app.write('one too many');
    const end = await relay.ended;
    expect(end.how === 'error' && end.message).toMatch(/^bad_record: the sequence numbers this side sends are used up/);

    const receiving = await againstPeer({ receiveSeq: max });
    const got = readBytes(receiving.app, 4);
    receiving.peerEnd.write(sealRecord(peerKeys.send, max, RecordType.Data, Buffer.from('last')));
    expect((await got).toString()).toBe('last');
    receiving.peerEnd.write(sealRecord(peerKeys.send, 0n, RecordType.Data, Buffer.from('wrapped')));
    const receivingEnd = await receiving.relay.ended;
    expect(receivingEnd).toMatchObject({ how: 'error', bytesIn: 4 });
    expect(receivingEnd.how === 'error' && receivingEnd.message).toMatch(/^bad_record: .* used up/);
  });

  it("close() racing the peer's CLOSE ends once, either way; release, write and close after the end do nothing", async () => {
    for (let round = 0; round < 20; round++) {
      const { peer, relay, peerEnd } = await againstPeer();
      peer.send(RecordType.Close, Buffer.from('{"code":"theirs"}'));
      relay.close(Buffer.from('{"code":"ours"}'));
      peerEnd.end();
      const end = await relay.ended;
      expect(['closed', 'closed_here']).toContain(end.how);
      relay.release('net');
      relay.release('local');
      relay.write(Buffer.from('late'));
      relay.close();
      expect(await relay.ended).toBe(end);
    }
  });

  it('seals what it reads into records RecordReader opens, EOF last', async () => {
    const { app, peer, relay, peerEnd } = await againstPeer();
    const sent = randomBytes(300_000);
    app.end(sent);
    const { data, then } = await peer.dataUntil();
    expect(data.equals(sent)).toBe(true);
    expect(then?.type).toBe(RecordType.Eof);
    peer.send(RecordType.Eof);
    peerEnd.end();
    expect(await relay.ended).toEqual({ how: 'eof', bytesIn: 0, bytesOut: sent.length });
  });

  it('ends at a changed byte with an error, and nothing after it reaches the local side', async () => {
    const { app, peer, relay } = await againstPeer();
    const got = readUntilEnd(app);
    peer.send(RecordType.Data, Buffer.from('before'));
    const bad = peer.seal(RecordType.Data, Buffer.from('changed'));
    bad[bad.length - 20]! ^= 0x40;
    peer.socket.write(bad);
    peer.send(RecordType.Data, Buffer.from('after'));
    const end = await relay.ended;
    expect(end).toMatchObject({ how: 'error', bytesIn: 6 });
    expect(end.how === 'error' && end.message).toMatch(/^tampered: record 1 /);
    expect((await got).data.toString()).toBe('before');
  });

  it('a TCP end with no EOF or CLOSE is an error (truncated), not an end; the local side gets a reset', async () => {
    const { app, peer, relay, peerEnd } = await againstPeer();
    peer.send(RecordType.Data, Buffer.from('partial answer'));
    // Read first: libuv takes data and a reset that arrive together for an end.
    expect((await readBytes(app, 14)).toString()).toBe('partial answer');
    const got = readUntilEnd(app);
    peerEnd.end();
    const end = await relay.ended;
    expect(end.how).toBe('error');
    expect(end.how === 'error' && end.message).toMatch(/^truncated/);
    const { error } = await got;
    expect(error?.message).toMatch(/ECONNRESET/); // never a clean end the app could take for the whole answer
  });

  it('a cut inside a record is truncated too', async () => {
    const { peer, relay, peerEnd } = await againstPeer();
    peerEnd.end(peer.seal(RecordType.Data, Buffer.from('cut')).subarray(0, 10));
    const end = await relay.ended;
    expect(end.how === 'error' && end.message).toMatch(/^truncated: .* inside record 0/);
  });

  it('holdNet reads nothing off the lane until release, while the local side flows', async () => {
    const peerKeys = deriveLaneKeys(secret, grantId, 1n, 'client');
    // fromNet is held too: what was read before the hand-over is not written before release.
    const fromNet = sealRecord(peerKeys.send, 0n, RecordType.Data, Buffer.from('held '));
    const { app, peer, relay } = await againstPeer({ holdNet: true, toNet: Buffer.from('first'), fromNet });
    peer.skip(1); // record 0 was fromNet
    const atApp: Buffer[] = [];
    app.on('data', (chunk: Buffer) => atApp.push(chunk));
    peer.send(RecordType.Data, Buffer.from('in'));
    expect((await peer.next())?.payload.toString()).toBe('first'); // toNet goes out while held
    // Two round trips through the local side: the relay's loop has run with the lane readable.
    for (const ping of ['ping 1', 'ping 2']) {
      app.write(ping);
      expect((await peer.next())?.payload.toString()).toBe(ping);
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(atApp).toString()).toBe('');
    relay.release('net');
    await expect.poll(() => Buffer.concat(atApp).toString()).toBe('held in');
  });

  it('holdLocal reads nothing locally until release, while the lane flows', async () => {
    const { app, peer, relay } = await againstPeer({ holdLocal: true });
    app.write('held out');
    for (const ping of ['ping 1', 'ping 2']) {
      peer.send(RecordType.Data, Buffer.from(ping));
      expect((await readBytes(app, ping.length)).toString()).toBe(ping);
    }
    relay.write(Buffer.from('marker')); // queued behind nothing: the first record the lane gets
    expect((await peer.next())?.payload.toString()).toBe('marker');
    relay.release('local');
    expect((await peer.next())?.payload.toString()).toBe('held out');
  });

  it('toLocal is written first; write() goes out after toNet, as DATA', async () => {
    const { app, peer } = await againstPeer({ toLocal: Buffer.from('output so far|'), toNet: Buffer.from('keys|') });
    peer.send(RecordType.Data, Buffer.from('more output'));
    expect((await readBytes(app, 25)).toString()).toBe('output so far|more output');
    expect((await peer.next())?.payload.toString()).toBe('keys|');
  });

  it('detachByte: sends what came before it, fires onDetach, stops reading local; output keeps flowing', async () => {
    let detached = 0;
    const { app, peer, relay } = await againstPeer({ detachByte: 0x1c, onDetach: () => detached++ });
    app.write(Buffer.from('ls\r\x1cnot sent'));
    expect((await peer.next())?.payload.toString()).toBe('ls\r');
    peer.send(RecordType.Data, Buffer.from('still shown'));
    expect((await readBytes(app, 11)).toString()).toBe('still shown');
    expect(detached).toBe(1);
    app.write('typed after detaching');
    relay.close(Buffer.from('{"code":"detached"}'));
    expect(await peer.next()).toEqual({ type: RecordType.Close, payload: Buffer.from('{"code":"detached"}') });
    peer.socket.end(); // a CLOSE ends the lane: the peer closes too
    expect(await relay.ended).toMatchObject({ how: 'closed_here', bytesOut: 3 });
  });

  it('stops reading its local side while the lane does not take what it sends (bounded memory)', async () => {
    const { app, relay, peerEnd } = await againstPeer();
    peerEnd.pause(); // the peer never reads
    const total = 96 << 20;
    const block = randomBytes(1 << 20);
    for (let sent = 0; sent < total; sent += block.length) app.write(block);
    // Wait until the app's writes stop draining into the kernel: the relay stopped reading.
    let last = -1;
    let still = 0;
    while (still < 10) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const taken = total - app.writableLength;
      still = taken === last ? still + 1 : 0;
      last = taken;
    }
    const unsent = app.writableLength;
    peerEnd.destroy();
    const end = await relay.ended;
    expect(end.how).toBe('error');
    // What it read is what the kernel's buffers and its own ~256 KiB hold, far from all 96 MiB.
    expect(end.bytesOut).toBeLessThan(32 << 20);
    expect(unsent).toBeGreaterThan(48 << 20);
  });
});

/** utime + stime of this whole process (the relay thread included), in clock ticks. */
function cpuTicks(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('a thousand relays in one process', () => {
  it('sit idle on peers that send a byte at a time and never read, and each end path closes every fd', async () => {
    // The relay thread and its loop's fds are made with the first relay() of the process, even one refused.
    const keys = deriveLaneKeys(secret, grantId, 1n, 'agent');
    const refused = { net: 1000, localRead: 1001, localWrite: 1001, closeLocal: false, localKind: 'socket' as const };
    expect(() => lanes.relay({ ...refused, keys, sendSeq: 0n, receiveSeq: 0n })).toThrow(/not open/);
    const before = openFds();
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const incoming: Socket[] = [];
    const waiting: ((socket: Socket) => void)[] = [];
    server.on('connection', (socket: Socket) => {
      const take = waiting.shift();
      if (take) take(socket);
      else incoming.push(socket);
    });
    const connected = async (): Promise<[Socket, Socket]> => {
      const other = new Promise<Socket>((resolve) => {
        const ready = incoming.shift();
        if (ready) resolve(ready);
        else waiting.push(resolve);
      });
      const mine = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      await new Promise<void>((resolve, reject) => mine.once('connect', resolve).once('error', reject));
      const ends: [Socket, Socket] = [mine, await other];
      sockets.push(...ends);
      return ends;
    };
    const count = 1000;
    const peerKeys = deriveLaneKeys(secret, grantId, 1n, 'client');
    const up: { relay: Relay; peerEnd: Socket; app: Socket; record: Buffer }[] = [];
    for (let i = 0; i < count; i++) {
      const [peerEnd, laneEnd] = await connected();
      const [app, relayEnd] = await connected();
      const fd = lanes.adoptSocket(relayEnd).fd;
      const relay = start(
        { net: lanes.adoptSocket(laneEnd).fd, localRead: fd, localWrite: fd, localKind: 'socket' },
        'agent',
      );
      peerEnd.pause(); // never reads what the relay sends
      app.write(randomBytes(1024));
      const record = sealRecord(peerKeys.send, 0n, RecordType.Data, randomBytes(100));
      peerEnd.write(record.subarray(0, 1));
      up.push({ relay, peerEnd, app, record });
    }
    server.close();
    // Each lane waits inside a record that comes a byte at a time: the relay thread must sleep.
    const ticks = cpuTicks();
    for (let byte = 1; byte <= 4; byte++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      for (const lane of up) lane.peerEnd.write(lane.record.subarray(byte, byte + 1));
    }
    const spent = cpuTicks() - ticks; // clock ticks (1/100 s) over about a second, both cores
    expect(spent).toBeLessThan(30); // about 11 here; a relay thread spinning on writable sockets took 59

    // Four ways to end: the peer's CLOSE, close() here, a cut, EOF both ways.
    const ends = up.map(async ({ relay, peerEnd, app, record }, i) => {
      const rest = record.subarray(5);
      const seal = (seq: bigint, type: RecordType) => sealRecord(peerKeys.send, seq, type, new Uint8Array(0));
      if (i % 4 === 0) {
        peerEnd.write(Buffer.concat([rest, seal(1n, RecordType.Close)]));
        return ['closed', await relay.ended] as const;
      }
      if (i % 4 === 1) {
        relay.close();
        // The peer ends only once the relay's CLOSE came: close() reaches the relay's thread as a
        // command, and a FIN inside a record arriving first is a cut ('error'), as it should be.
        const peer = new PeerLane(peerEnd, peerKeys);
        peerEnd.resume();
        for (let got = await peer.next(); got && got.type !== RecordType.Close; got = await peer.next());
        peerEnd.end();
        return ['closed_here', await relay.ended] as const;
      }
      if (i % 4 === 2) {
        peerEnd.destroy();
        return ['error', await relay.ended] as const;
      }
      peerEnd.on('end', () => peerEnd.end()).resume();
      peerEnd.write(Buffer.concat([rest, seal(1n, RecordType.Eof)]));
      app.on('data', () => {}).end();
      return ['eof', await relay.ended] as const;
    });
    for (const [how, end] of await Promise.all(ends)) expect(end.how).toBe(how);
    await Promise.all(sockets.splice(0).map(closed));
    expect(openFds()).toBe(before);
  });
});

describe('a pty (node-pty running cat) as the local side', () => {
  it('carries keys in and output out; the pty ending (EIO) is EOF', async () => {
    const pty: IPty = spawnPty('cat', [], { cols: 80, rows: 24, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const exited = new Promise<number>((resolve) => pty.onExit(({ exitCode }) => resolve(exitCode)));
    // node-pty's own reader of the master must not take the output: stop it (after the resume it
    // scheduled when it was made, which would start it again), then relay a dup.
    const internals = pty as unknown as { _fd: number; _socket: Socket & { _handle: { readStop(): void } } };
    internals._socket.pause();
    await new Promise((resolve) => setImmediate(resolve));
    internals._socket._handle.readStop();
    expect(internals._socket.read()).toBeNull(); // cat has said nothing yet
    const master = lanes.dupFd(internals._fd);
    const [peerEnd, laneEnd] = await pair();
    const relay = start(
      { net: lanes.adoptSocket(laneEnd).fd, localRead: master, localWrite: master, localKind: 'pty' },
      'agent',
    );
    const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
    peer.send(RecordType.Data, Buffer.from('hello lane\r'));
    let output = '';
    while ((output.match(/hello lane/g) ?? []).length < 2) {
      const record = await peer.next();
      expect(record?.type).toBe(RecordType.Data);
      output += record!.payload.toString();
    }
    peer.send(RecordType.Data, Buffer.from('\x04')); // ^D: cat reads its end and exits
    const { then } = await peer.dataUntil();
    expect(then?.type).toBe(RecordType.Eof);
    expect(await exited).toBe(0);
    peer.send(RecordType.Eof);
    peerEnd.end();
    expect((await relay.ended).how).toBe('eof');
    internals._socket.destroy();
  });
});

describe("a terminal's stdin and stdout as the local side", () => {
  it('reads stdin to its end (EOF), writes the lane to stdout, and leaves the fds open; regular files too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      const input = randomBytes(1 << 20);
      writeFileSync(join(dir, 'in'), input);
      const stdin = openSync(join(dir, 'in'), 'r');
      const stdout = openSync(join(dir, 'out'), 'w');
      const [peerEnd, laneEnd] = await pair();
      const relay = start(
        {
          net: lanes.adoptSocket(laneEnd).fd,
          localRead: stdin,
          localWrite: stdout,
          localKind: 'terminal',
          closeLocal: false,
        },
        'client',
      );
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      const { data, then } = await peer.dataUntil();
      expect(data.equals(input)).toBe(true);
      expect(then?.type).toBe(RecordType.Eof);
      peer.send(RecordType.Data, Buffer.from('the output'));
      peer.send(RecordType.Eof);
      peerEnd.end();
      expect(await relay.ended).toEqual({ how: 'eof', bytesIn: 10, bytesOut: input.length });
      expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('the output');
      closeSync(stdin); // still open: a terminal's fds are not the relay's to close
      closeSync(stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a regular file as the local side (file)', () => {
  it('sends [offset, limit) with pread, then EOF; two file relays back to back copy a file exactly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      const input = randomBytes((3 << 20) + 12345);
      writeFileSync(join(dir, 'in'), input);
      const from = 1000;
      // The receiving file has the first `from` bytes already (a resumed download): DATA is appended.
      writeFileSync(join(dir, 'out'), input.subarray(0, from));
      const source = openSync(join(dir, 'in'), 'r');
      const target = openSync(join(dir, 'out'), 'a');
      const [laneA, laneB] = await pair();
      const sender = startFile(laneA, source, { offset: from, limit: input.length }, 'agent');
      const receiver = startFile(laneB, target, { offset: 0, limit: 0 }, 'client');
      const sent = input.length - from;
      expect(await sender.ended).toEqual({ how: 'eof', bytesIn: 0, bytesOut: sent });
      expect(await receiver.ended).toEqual({ how: 'eof', bytesIn: sent, bytesOut: 0 });
      expect(readFileSync(join(dir, 'out')).equals(input)).toBe(true);
      expect(() => closeSync(source)).toThrow(/EBADF/); // closeLocal: the relay closed them
      expect(() => closeSync(target)).toThrow(/EBADF/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file shorter than its limit ends as truncated, never EOF: the peer sees a cut', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      writeFileSync(join(dir, 'in'), randomBytes(100_000));
      const [peerEnd, laneEnd] = await pair();
      const relay = startFile(laneEnd, openSync(join(dir, 'in'), 'r'), { offset: 0, limit: 200_000 }, 'agent');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
      const end = await relay.ended;
      expect(end.how).toBe('error');
      expect(end).toMatchObject({ message: expect.stringMatching(/^truncated: the file ends at byte 100000/) });
      const { data, then } = await peer.dataUntil();
      expect(data.length).toBe(100_000);
      expect(then?.type).not.toBe(RecordType.Eof);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a growing file: sends up to its limit and waits (no EOF), follows fileLimit forward, EOF after the final one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      const path = join(dir, 'log');
      const all = randomBytes(300_000);
      // The file always holds more than the limit says: bytes past it are not sent until it moves.
      writeFileSync(path, all.subarray(0, 150_000));
      const [peerEnd, laneEnd] = await pair();
      const relay = startFile(laneEnd, openSync(path, 'r'), { offset: 1000, limit: 100_000, growing: true }, 'agent');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
      const received: Buffer[] = [];
      let count = 0;
      const upTo = async (n: number) => {
        while (count < n) {
          const record = await peer.next();
          if (!record) throw new Error(`the lane ended at ${count} of ${n}`);
          expect(record.type).toBe(RecordType.Data);
          received.push(Buffer.from(record.payload));
          count += record.payload.length;
        }
        expect(count).toBe(n);
      };
      await upTo(99_000);
      relay.fileLimit(50_000, false); // back: ignored
      appendFileSync(path, all.subarray(150_000, 200_000));
      relay.fileLimit(180_000, false);
      await upTo(179_000);
      appendFileSync(path, all.subarray(200_000));
      relay.fileLimit(250_000, true);
      relay.fileLimit(300_000, false); // after final: ignored
      await upTo(249_000);
      expect((await peer.next())?.type).toBe(RecordType.Eof);
      peer.send(RecordType.Eof);
      peerEnd.end();
      expect(await relay.ended).toEqual({ how: 'eof', bytesIn: 0, bytesOut: 249_000 });
      expect(Buffer.concat(received).equals(all.subarray(1000, 250_000))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a growing file whose limit never becomes final ends only by close(): CLOSE, never EOF', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      writeFileSync(join(dir, 'log'), randomBytes(10_000));
      const [peerEnd, laneEnd] = await pair();
      const relay = startFile(
        laneEnd,
        openSync(join(dir, 'log'), 'r'),
        { offset: 0, limit: 10_000, growing: true },
        'agent',
      );
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
      let count = 0;
      while (count < 10_000) {
        const record = await peer.next();
        expect(record?.type).toBe(RecordType.Data);
        count += record!.payload.length;
      }
      relay.close(Buffer.from('{"code":"gone"}'));
      const then = await peer.next();
      expect(then?.type).toBe(RecordType.Close);
      expect(Buffer.from(then!.payload).toString()).toBe('{"code":"gone"}');
      peerEnd.end();
      expect((await relay.ended).how).toBe('closed_here');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes at most receiveLimit bytes of DATA: a peer that sends more ends the lane as too_big, and no more is written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      const target = openSync(join(dir, 'out'), 'a');
      const [peerEnd, laneEnd] = await pair();
      const relay = startFile(laneEnd, target, { offset: 0, limit: 0, receiveLimit: 100_000 }, 'client');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      for (let i = 0; i < 4; i++) peer.send(RecordType.Data, randomBytes(65_536));
      const end = await relay.ended;
      expect(end).toMatchObject({
        how: 'error',
        message: expect.stringMatching(/^too_big: the peer sent more than 100000 bytes/),
      });
      expect(readFileSync(join(dir, 'out')).length).toBe(65_536);
      // Up to the limit exactly is taken.
      const exact = openSync(join(dir, 'exact'), 'a');
      const [peerEnd2, laneEnd2] = await pair();
      const whole = startFile(laneEnd2, exact, { offset: 0, limit: 0, receiveLimit: 65_537 }, 'client');
      const peer2 = new PeerLane(peerEnd2, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      peer2.send(RecordType.Data, randomBytes(65_536));
      peer2.send(RecordType.Data, randomBytes(1));
      peer2.send(RecordType.Eof);
      expect(await peer2.next()).toMatchObject({ type: RecordType.Eof });
      peerEnd2.end();
      expect(await whole.ended).toMatchObject({ how: 'eof', bytesIn: 65_537 });
      expect(readFileSync(join(dir, 'exact')).length).toBe(65_537);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes records that came together in batches, and everything before a bad record or CLOSE (any chunking)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(65_536), fc.integer({ min: 1, max: 65_536 })),
            {
              minLength: 1,
              maxLength: 7,
            },
          ),
          fc.constantFrom('eof', 'tampered', 'close', 'bad type'),
          fc.array(fc.integer({ min: 1, max: 300_000 }), { maxLength: 4 }),
          async (sizes, last, cuts) => {
            const path = join(dir, `out-${run++}`);
            const target = openSync(path, 'a+');
            const [peerEnd, laneEnd] = await pair();
            const relay = startFile(laneEnd, target, { offset: 0, limit: 0, sha256: { prefix: 0 } }, 'client');
            const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
            const payloads = sizes.map((size) => randomBytes(size));
            const records = payloads.map((p) => peer.seal(RecordType.Data, p));
            if (last === 'eof') records.push(peer.seal(RecordType.Eof));
            if (last === 'close') records.push(peer.seal(RecordType.Close, Buffer.from('bye')));
            if (last === 'bad type') records.push(peer.seal(RecordType.Hello, Buffer.from('{}')));
            if (last === 'tampered') {
              const bad = peer.seal(RecordType.Data, Buffer.from('x'));
              bad[bad.length - 1]! ^= 1;
              records.push(bad);
            }
            // Whole, in as few writes as the cuts make: the relay gets several records per read.
            const stream = Buffer.concat(records);
            let from = 0;
            for (const size of cuts) {
              peerEnd.write(stream.subarray(from, from + size));
              from = Math.min(stream.length, from + size);
            }
            peerEnd.write(stream.subarray(from));
            if (last === 'eof') {
              expect(await peer.next()).toMatchObject({ type: RecordType.Eof });
              peerEnd.end();
            }
            const end = await relay.ended;
            const whole = Buffer.concat(payloads);
            expect(end.how).toBe(last === 'eof' ? 'eof' : last === 'close' ? 'closed' : 'error');
            expect(end.bytesIn).toBe(whole.length);
            expect(readFileSync(path).equals(whole)).toBe(true);
            if (last === 'eof') expect(end).toMatchObject({ sha256: createHash('sha256').update(whole).digest('hex') });
            peerEnd.destroy();
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sha256 of a download many times the hasher ring (1 MiB), sent at once: the digest and the file are right', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      for (const prefix of [0, 3_000]) {
        const whole = randomBytes(9 * 1024 * 1024 + 4321);
        const path = join(dir, `out-${prefix}`);
        writeFileSync(path, whole.subarray(0, prefix));
        const target = openSync(path, 'a+');
        const [peerEnd, laneEnd] = await pair();
        const relay = startFile(laneEnd, target, { offset: 0, limit: 0, sha256: { prefix } }, 'client');
        const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
        // Records of every size up to the largest, so the ring's wrap falls anywhere in a payload.
        for (let at = prefix, i = 0; at < whole.length; i++) {
          const size = i % 3 === 0 ? 65_536 : 1 + ((i * 40_503) % 65_536);
          peer.send(RecordType.Data, whole.subarray(at, at + size));
          at += size;
        }
        peer.send(RecordType.Eof);
        expect(await peer.next()).toMatchObject({ type: RecordType.Eof });
        peerEnd.end();
        const sha256 = createHash('sha256').update(whole).digest('hex');
        expect(await relay.ended).toEqual({ how: 'eof', bytesIn: whole.length - prefix, bytesOut: 0, sha256 });
        expect(readFileSync(path).equals(whole)).toBe(true);
      }
      // Each download's hasher thread is joined at its end.
      const threads = readdirSync('/proc/self/task').map((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8'));
      expect(threads.filter((name) => name.trim() === 'lane-hash')).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sha256 of many downloads at once: at most 4 lane-hash threads (1 MiB ring each), the rest hash on the relay thread; every digest right, a cut frees its thread', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    const hashThreads = () =>
      readdirSync('/proc/self/task').filter((tid) => {
        try {
          return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'lane-hash';
        } catch {
          return false; // a thread that ended meanwhile
        }
      }).length;
    let laneNo = 0n;
    /** `count` downloads, each past its first 60,000 bytes (written, so taken and queued for its hash): none ended. */
    const begin = async (count: number) => {
      const downloads = await Promise.all(
        Array.from({ length: count }, async () => {
          laneNo++;
          const whole = randomBytes(200_000 + Number(laneNo));
          const path = join(dir, `out-${laneNo}`);
          const target = openSync(path, 'a+');
          const [peerEnd, laneEnd] = await pair();
          const relay = start(
            {
              net: lanes.adoptSocket(laneEnd).fd,
              localRead: target,
              localWrite: target,
              localKind: 'file',
              file: { offset: 0, limit: 0, sha256: { prefix: 0 } },
            },
            'client',
            laneNo,
          );
          const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, laneNo, 'agent'));
          peer.send(RecordType.Data, whole.subarray(0, 60_000));
          return { whole, path, relay, peer, peerEnd };
        }),
      );
      for (let tries = 0; downloads.some((d) => readFileSync(d.path).length < 60_000); tries++) {
        expect(tries).toBeLessThan(1_000);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return downloads;
    };
    const finish = async (downloads: Awaited<ReturnType<typeof begin>>) => {
      for (const d of downloads) {
        for (let at = 60_000; at < d.whole.length; at += 65_536) {
          d.peer.send(RecordType.Data, d.whole.subarray(at, at + 65_536));
        }
        d.peer.send(RecordType.Eof);
      }
      for (const d of downloads) {
        expect(await d.peer.next()).toMatchObject({ type: RecordType.Eof });
        d.peerEnd.end();
        const sha256 = createHash('sha256').update(d.whole).digest('hex');
        expect(await d.relay.ended).toEqual({ how: 'eof', bytesIn: d.whole.length, bytesOut: 0, sha256 });
        expect(readFileSync(d.path).equals(d.whole)).toBe(true);
      }
    };
    try {
      const downloads = await begin(7);
      expect(hashThreads()).toBe(4);
      // Three cut (with a hash thread or without), the rest to their end.
      for (const d of downloads.slice(0, 3)) {
        d.peer.send(RecordType.Data, d.whole.subarray(60_000, 120_000));
        d.peerEnd.destroy();
        const end = await d.relay.ended;
        expect(end.how).toBe('error');
        expect(end).not.toHaveProperty('sha256');
      }
      await finish(downloads.slice(3));
      expect(hashThreads()).toBe(0);
      // Every thread ended and gave its place back, cut or not: 4 new downloads get 4 again.
      const more = await begin(4);
      expect(hashThreads()).toBe(4);
      await finish(more);
      expect(hashThreads()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sha256: hashes the prefix the file already has, then each DATA as written; EOF carries the digest, a cut none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      const whole = randomBytes(70_000 + 3 * 65_536 + 17);
      const prefix = 70_000; // more than one pread's worth
      writeFileSync(join(dir, 'out'), whole.subarray(0, prefix));
      const target = openSync(join(dir, 'out'), 'a+');
      const [peerEnd, laneEnd] = await pair();
      const relay = startFile(laneEnd, target, { offset: 0, limit: 0, sha256: { prefix } }, 'client');
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      for (let at = prefix; at < whole.length; at += 65_536)
        peer.send(RecordType.Data, whole.subarray(at, at + 65_536));
      peer.send(RecordType.Eof);
      expect(await peer.next()).toMatchObject({ type: RecordType.Eof });
      peerEnd.end();
      const sha256 = createHash('sha256').update(whole).digest('hex');
      expect(await relay.ended).toEqual({ how: 'eof', bytesIn: whole.length - prefix, bytesOut: 0, sha256 });
      expect(
        createHash('sha256')
          .update(readFileSync(join(dir, 'out')))
          .digest('hex'),
      ).toBe(sha256);

      // A lane cut before EOF reports no digest: the bytes it wrote stay for a resumed try.
      const cut = openSync(join(dir, 'out'), 'a+');
      const [peerEnd2, laneEnd2] = await pair();
      const broken = startFile(laneEnd2, cut, { offset: 0, limit: 0, sha256: { prefix: whole.length } }, 'client');
      const peer2 = new PeerLane(peerEnd2, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      peer2.send(RecordType.Data, randomBytes(1000));
      peerEnd2.destroy();
      const end = await broken.ended;
      expect(end.how).toBe('error');
      expect(end).not.toHaveProperty('sha256');

      // A prefix longer than the file is an error before anything is taken.
      const short = openSync(join(dir, 'out'), 'a+');
      const [, laneEnd3] = await pair();
      const refused = startFile(
        laneEnd3,
        short,
        { offset: 0, limit: 0, sha256: { prefix: whole.length + 5000 } },
        'client',
      );
      expect(await refused.ended).toMatchObject({
        how: 'error',
        message: expect.stringMatching(/^truncated: the file ends at byte \d+, before the \d+ to hash/),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sha256: a big prefix is read back a piece per loop turn: the bulk thread's other lanes go on meanwhile, and the digest is right", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-'));
    try {
      // A resumed download's 1 GiB already on disk (sparse: zeros). Hashing it takes the relay
      // thread most of a second: done in one go, every other bulk lane waited for it.
      const size = 1024 * 1024 * 1024;
      writeFileSync(join(dir, 'resumed'), '');
      truncateSync(join(dir, 'resumed'), size);
      const target = openSync(join(dir, 'resumed'), 'a+');
      const [peerEnd, laneEnd] = await pair();
      const resumed = startFile(laneEnd, target, { offset: 0, limit: 0, sha256: { prefix: size } }, 'client');
      const order: string[] = [];
      void resumed.ended.then(() => order.push('resumed'));
      // Its peer has nothing more to send: the lane ends as soon as the prefix is hashed.
      const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'agent'));
      peer.send(RecordType.Eof);
      peerEnd.end();
      // Another bulk lane started right behind it: a small file sent, and the ends exchanged.
      writeFileSync(join(dir, 'small'), 'hello');
      const small = openSync(join(dir, 'small'), 'r');
      const [peerEnd2, laneEnd2] = await pair();
      const other = startFile(laneEnd2, small, { offset: 0, limit: 5 }, 'agent');
      void other.ended.then(() => order.push('other'));
      const peer2 = new PeerLane(peerEnd2, deriveLaneKeys(secret, grantId, 1n, 'client'));
      expect(await peer2.next()).toMatchObject({ type: RecordType.Data });
      expect(await peer2.next()).toMatchObject({ type: RecordType.Eof });
      peer2.send(RecordType.Eof);
      peerEnd2.end();
      expect(await other.ended).toMatchObject({ how: 'eof', bytesOut: 5 });
      const zeros = createHash('sha256');
      const mib = Buffer.alloc(1024 * 1024);
      for (let at = 0; at < size; at += mib.length) zeros.update(mib);
      expect(await resumed.ended).toEqual({ how: 'eof', bytesIn: 0, bytesOut: 0, sha256: zeros.digest('hex') });
      expect(order).toEqual(['other', 'resumed']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('checks file against localKind at the boundary', async () => {
    const [, laneEnd] = await pair();
    const net = lanes.adoptSocket(laneEnd).fd;
    const base = {
      net,
      localRead: 0,
      localWrite: 1,
      closeLocal: false,
      keys: deriveLaneKeys(secret, grantId, 1n, 'agent'),
      sendSeq: 0n,
      receiveSeq: 0n,
    };
    expect(() => lanes.relay({ ...base, localKind: 'file' })).toThrow(/RelayOptions\.file/);
    expect(() => lanes.relay({ ...base, localKind: 'terminal', file: { offset: 0, limit: 1 } })).toThrow(
      /RelayOptions\.file/,
    );
    expect(() => lanes.relay({ ...base, localKind: 'file', file: { offset: 2, limit: 1 } })).toThrow(
      /offset must be ≤ limit/,
    );
    closeSync(net);
  });
});

describe('adoptSocket', () => {
  it('returns what Node had read and keeps the connection: no FIN, no reset, the relay carries on', async () => {
    const [peerEnd, mine] = await pair();
    const peer = new PeerLane(peerEnd, deriveLaneKeys(secret, grantId, 1n, 'client'));
    let peerSawEnd = false;
    peerEnd.on('end', () => (peerSawEnd = true));
    const first = peer.send(RecordType.Data, Buffer.from('read by Node '));
    mine.pause();
    await new Promise((resolve) => mine.once('readable', resolve));
    const { fd, pending } = lanes.adoptSocket(mine);
    expect(pending.equals(first)).toBe(true);
    expect(mine.destroyed).toBe(true);
    const { app, fd: localFd } = await local();
    const relay = start(
      { net: fd, localRead: localFd, localWrite: localFd, localKind: 'socket', fromNet: pending },
      'agent',
    );
    peer.send(RecordType.Data, Buffer.from('then by the relay'));
    expect((await readBytes(app, 30)).toString()).toBe('read by Node then by the relay');
    app.write('back');
    expect((await peer.next())?.payload.toString()).toBe('back');
    expect(peerSawEnd).toBe(false);
    relay.close();
    expect((await peer.next())?.type).toBe(RecordType.Close);
    peerEnd.end();
    expect((await relay.ended).how).toBe('closed_here');
  });

  it('dupFd dups with close-on-exec set', () => {
    const copy = lanes.dupFd(0);
    try {
      const flags = /^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${copy}`, 'utf8'))?.[1];
      expect(copy).not.toBe(0);
      expect(parseInt(flags ?? '0', 8) & 0o2000000).toBe(0o2000000); // O_CLOEXEC
    } finally {
      closeSync(copy);
    }
    expect(() => lanes.dupFd(100_000)).toThrow(/dupFd\(100000\): Bad file descriptor/);
  });

  it('refuses a socket with no descriptor', async () => {
    const [, mine] = await pair();
    await closed(mine);
    expect(() => lanes.adoptSocket(mine)).toThrow(/no file descriptor/);
  });
});

describe('options', () => {
  it('are checked at the boundary, naming the field', async () => {
    const keys = deriveLaneKeys(secret, grantId, 1n, 'client');
    const base: RelayOptions = {
      net: 1000,
      localRead: 1001,
      localWrite: 1001,
      closeLocal: false,
      keys,
      sendSeq: 0n,
      receiveSeq: 0n,
      localKind: 'socket',
    };
    expect(() => lanes.relay({ ...base, net: -1 })).toThrow(/RelayOptions\.net/);
    expect(() => lanes.relay({ ...base, keys: { ...keys, send: Buffer.alloc(16) } })).toThrow(
      /RelayOptions\.keys\.send: must be 32 bytes/,
    );
    expect(() => lanes.relay({ ...base, sendSeq: 1n << 64n })).toThrow(/RelayOptions\.sendSeq/);
    expect(() => lanes.relay({ ...base, detachByte: 256 })).toThrow(/RelayOptions\.detachByte/);
    expect(() => lanes.relay({ ...base, localKind: 'fifo' as 'socket' })).toThrow(/RelayOptions\.localKind/);
    // fds that are not open are refused by the native side, naming the field.
    expect(() => lanes.relay(base)).toThrow(/RelayOptions\.net: fd 1000 is not open/);
  });

  it('refuse a lane fd that is also a local fd (it would be closed twice), and leave it open', async () => {
    const { fd } = await local();
    const keys = deriveLaneKeys(secret, grantId, 1n, 'client');
    const same = { net: fd, closeLocal: true, keys, sendSeq: 0n, receiveSeq: 0n, localKind: 'socket' as const };
    try {
      expect(() => lanes.relay({ ...same, localRead: fd, localWrite: fd })).toThrow(
        /RelayOptions\.net: fd \d+ is also localRead or localWrite/,
      );
      expect(() =>
        lanes.relay({ ...same, localRead: 0, localWrite: fd, localKind: 'terminal', closeLocal: false }),
      ).toThrow(/RelayOptions\.net: fd \d+ is also localRead or localWrite/);
      expect(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).toMatch(/^flags:/m); // still the caller's
    } finally {
      closeSync(fd);
    }
  });
});
