import { CoreApiClient, FrameReader } from '@hangar/shared';
import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../../../test/support/processes.js';
import { CoreApiServer } from '../../src/api/index.js';
import { HangarCore } from '../../src/core.js';
import { reachRunningCore } from '../../src/door/connect.js';
import { DoorClient } from '../../src/door/door-client.js';
import { protocolFingerprint } from '../../src/door/fingerprint.js';
import { isCoreGreeting } from '../../src/door/greeting.js';
import { CoreGreetingSchema } from '../../src/door/greeting-schemas.js';
import { LocalDoor } from '../../src/door/local-door.js';
import { encodeFrame } from '../../src/door/socket-transport.js';
import { nodePlatform } from '../../src/platform.js';

const quiet = pino({ level: 'silent' });

describe('the local door: length-prefixed frames', () => {
  /** The frames the link's reader (the door's) cuts out of `bytes` read `cuts` at a time, in turn. */
  function readFrames(bytes: Buffer, cuts: number[], reader = new FrameReader()): number[][] {
    const received: number[][] = [];
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const size = cuts[i % cuts.length]!;
      reader.push(bytes.subarray(at, at + size), (frame) => received.push([...frame]));
      at += size;
    }
    return received;
  }

  it('gives back the frames encodeFrame wrote, however the bytes are split on the way', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encodeFrame));
          expect(readFrames(bytes, cuts)).toEqual(frames.map((f) => [...f]));
        },
      ),
    );
  });

  it('a frame far bigger than the reads that carry it comes out whole, between frames that fit a read', () => {
    const big = Buffer.alloc(256 * 1024, 7);
    for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff;
    const small = Buffer.from('small');
    const bytes = Buffer.concat([encodeFrame(small), encodeFrame(big), encodeFrame(small)]);
    for (const read of [1, 3, 4096, 64 * 1024]) {
      expect(readFrames(bytes, [read])).toEqual([[...small], [...big], [...small]]);
    }
  });

  it('refuses a length no frame of ours has (the other end speaks something else)', () => {
    expect(() => new FrameReader(1024).push(Buffer.from('HTTP/1.1 200 OK\r\n'), () => undefined)).toThrow(
      /frame length \d+ is outside/,
    );
  });
});

describe('the local door: greetings', () => {
  it('the hangar command checks a core greeting by hand exactly as the schema would', () => {
    const samples: unknown[] = [
      { hangar: 'core', door: 1, pid: 42 },
      { hangar: 'core', door: 1, pid: 42, protocol: 'abc' },
      { hangar: 'core', door: 1, pid: 42, protocol: 'x'.repeat(128), extra: true },
      { hangar: 'core', door: 1, pid: 42, protocol: 'x'.repeat(129) },
      { hangar: 'core', door: 1, pid: 42, protocol: 7 },
      { hangar: 'core', door: 2, pid: 42 },
      { hangar: 'client', door: 1, pid: 42 },
      { hangar: 'core', door: 1, pid: 4.2 },
      { hangar: 'core', door: 1 },
      [],
      null,
      'core',
    ];
    for (const sample of samples) {
      const parsed = CoreGreetingSchema.safeParse(sample);
      expect(isCoreGreeting(sample), JSON.stringify(sample)).toEqual(parsed.success ? parsed.data : undefined);
    }
    fc.assert(
      fc.property(fc.anything(), (value) => {
        expect(isCoreGreeting(value) !== undefined).toBe(CoreGreetingSchema.safeParse(value).success);
      }),
    );
  });

  it('the protocol fingerprint follows the protocol modules and nothing else', () => {
    const dir = tempDir('fingerprint');
    try {
      const write = (path: string, text: string) => writeFileSync(join(dir, path), text);
      mkdirSync(join(dir, 'protocol'));
      write('errors.js', 'export const ERROR_CODES = [];');
      write('protocol/core-api.js', 'export const A = 1;');
      write('index.js', 'export {};');
      const first = protocolFingerprint(dir);
      expect(first).toMatch(/^[0-9a-f]{32}$/);
      write('index.js', 'export { other };');
      expect(protocolFingerprint(dir)).toBe(first);
      write('protocol/core-api.js', 'export const A = 2;');
      expect(protocolFingerprint(dir)).not.toBe(first);
      expect(protocolFingerprint(join(dir, 'missing'))).toBeUndefined();
    } finally {
      removeDir(dir);
    }
  });
});

describe('the local door of a running core', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  async function runningCore() {
    const home = tempDir('local-door');
    cleanup.push(() => removeDir(home));
    const core = await HangarCore.open({ home, logger: quiet });
    cleanup.push(() => core.dispose());
    const api = new CoreApiServer(core, nodePlatform(quiet), { live: false });
    cleanup.push(() => api.dispose());
    const door = await LocalDoor.start({ api, home, logger: quiet });
    cleanup.push(() => door?.dispose());
    return { home, api, door: door! };
  }

  it('serves the core API to a client that greets, and says which core it is', async () => {
    const { home, api } = await runningCore();
    const running = await reachRunningCore(home);
    expect(running).toMatchObject({ kind: 'core', pid: process.pid });
    if (running.kind !== 'core') return;
    const client = new CoreApiClient(running.transport);
    cleanup.push(() => client.dispose());
    expect(await client.call('hosts.list', {})).toEqual({ hosts: [] });
    expect(api.connectionCount).toBe(1);
  });

  it('a DoorClient gets what a CoreApiClient gets, and a bad call is refused by the core naming the field', async () => {
    const { home } = await runningCore();
    const reach = async () => {
      const running = await reachRunningCore(home);
      if (running.kind !== 'core') throw new Error(`no core: ${running.kind}`);
      return running;
    };
    const door = new DoorClient((await reach()).transport, { peer: 'the core' });
    cleanup.push(() => door.dispose());
    const full = new CoreApiClient((await reach()).transport);
    cleanup.push(() => full.dispose());
    expect(await door.call('sessions.list', {})).toEqual(await full.call('sessions.list', {}));
    expect(await door.call('hosts.list', {})).toEqual({ hosts: [] });
    // Checked by the core, not here: the same error a CoreApiClient makes without sending.
    const bad = { host: 7 } as unknown as { host: string };
    const fromDoor = await door.call('sessions.list', bad).catch((error: unknown) => error);
    const fromClient = await full.call('sessions.list', bad).catch((error: unknown) => error);
    expect(fromDoor).toMatchObject({ code: 'E_BAD_REQUEST', message: expect.stringContaining('host') });
    expect((fromDoor as Error).message).toBe((fromClient as Error).message);
    await expect(door.call('sessions.kill', { host: 'nowhere', name: 'x' })).rejects.toMatchObject({
      code: 'E_HOST_NOT_FOUND',
    });
  });

  it('drops a connection that sends anything but a greeting', async () => {
    const { home, door } = await runningCore();
    const socket = connect(join(home, 'core.sock'));
    cleanup.push(() => socket.destroy());
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.resume(); // read (and ignore) the core's greeting, so that its close is seen
    socket.write('GET / HTTP/1.1\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    expect(door.connectionCount).toBe(0);
  });

  it('a second core for the same state dir leaves the first one serving', async () => {
    const { home, api } = await runningCore();
    const second = await LocalDoor.start({ api, home, logger: quiet });
    expect(second).toBeUndefined();
    expect(await reachRunningCore(home)).toMatchObject({ kind: 'core' });
  });
});
