import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { makeLoginProof, type DeviceSignalFailure } from '@hangar/shared';
import {
  PASSWORD,
  TestClock,
  newKey,
  post,
  signup,
  startTestRelay,
  uniqueEmail,
  waitFor,
  useTestRelay,
  hostAndDevice,
} from './support/relay-fixture.js';
import { spliceUpgrade } from './support/splice-upgrade.js';
import type { TestKey, TestRelay } from './support/relay-fixture.js';

/** The relay with its real limits (scale 1), on loopback: every request comes from 127.0.0.1. */
describe('rate limits', () => {
  const relay = useTestRelay('sqlite', { rateLimitScale: 1 });

  it('the sixth sign-up in a burst from one address gets 429 with Retry-After', async () => {
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 6; i++) {
      const email = uniqueEmail('burst');
      const key = newKey();
      last = await post(relay.url, 'auth.signup', {
        email,
        password: 'a long enough password',
        device: { public_key: key.publicKey, name: 'laptop' },
        proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
      });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(last!.body['error'].code).toBe('E_RATE_LIMITED');
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(last!.body['error'].message).toMatch(/try again in \d+ s/);
  });

  it('without --trust-proxy, an X-Forwarded-For of the client’s own is never its address', async () => {
    await using own = await startTestRelay({ rateLimitScale: 1 });
    const statuses: number[] = [];
    for (const forwarded of [
      '198.51.100.1',
      '2001:db8:9::1',
      '[2001:db8:a::1]:443',
      'unknown',
      ' ',
      '198.51.100.2:1',
    ]) {
      const email = uniqueEmail('forged');
      const key = newKey();
      const response = await fetch(`${own.url}/v1/auth.signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': forwarded },
        body: JSON.stringify({
          email,
          password: 'a long enough password',
          device: { public_key: key.publicKey, name: 'laptop' },
          proof: makeLoginProof(key.signer, { relayOrigin: own.client.origin, identity: email }),
        }),
      });
      statuses.push(response.status);
    }
    // One peer (127.0.0.1), one budget: five sign-ups, whatever the header said.
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('socket creation from one address is limited: the upgrade is answered 429', async () => {
    const url = `${relay.url.replace('http', 'ws')}/v1/device`;
    const outcomes = await Promise.all(
      Array.from(
        { length: 65 },
        () =>
          new Promise<number>((resolve) => {
            const socket = new WebSocket(url);
            socket.on('open', () => {
              resolve(101);
              socket.terminate();
            });
            socket.on('unexpected-response', (_request, response) => {
              resolve(response.statusCode ?? 0);
              socket.terminate();
            });
            socket.on('error', () => resolve(-1));
          }),
      ),
    );
    // A burst of 60, refilled at 2 per second: on a slow machine one or two more may get in.
    expect(outcomes.filter((s) => s === 101).length).toBeGreaterThanOrEqual(60);
    expect(outcomes.filter((s) => s === 429).length).toBeGreaterThanOrEqual(3);
    expect(outcomes.every((s) => s === 101 || s === 429)).toBe(true);
  });
});

describe('rate limits behind a reverse proxy (--trust-proxy)', () => {
  it("a client cannot pick its own address with an X-Forwarded-For of its own: the proxy's last entry counts", async () => {
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    // nginx's `proxy_add_x_forwarded_for` (and any proxy that appends) keeps what the client sent and
    // adds the address it saw: here the attacker's 203.0.113.7, behind a new made-up address each time.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const email = uniqueEmail('spoof');
      const key = newKey();
      const response = await fetch(`${relay.url}/v1/auth.signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `198.51.100.${i}, 203.0.113.7` },
        body: JSON.stringify({
          email,
          password: 'a long enough password',
          device: { public_key: key.publicKey, name: 'laptop' },
          proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
        }),
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('an IPv6 client is one address per /64, and a port in the X-Forwarded-For entry is not part of the address', async () => {
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    const signupFrom = async (address: string) => {
      const email = uniqueEmail('spread');
      const key = newKey();
      const response = await fetch(`${relay.url}/v1/auth.signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
        body: JSON.stringify({
          email,
          password: 'a long enough password',
          device: { public_key: key.publicKey, name: 'laptop' },
          proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
        }),
      });
      return response.status;
    };
    // Five sign-ups a burst per address: a new address in the same /64, or a new source port, each time.
    const clients = [
      (i: number) => `2001:db8:1:2:${(i + 1).toString(16)}::${i + 1}`,
      (i: number) => `203.0.113.7:${51234 + i}`,
      (i: number) => `[2001:db8:7::1]:${443 + i}`,
    ];
    for (const client of clients) {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push(await signupFrom(client(i)));
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    }
    // Without the port, the same clients: spent too. The next /64 and another IPv4 address are not.
    expect(await signupFrom('203.0.113.7')).toBe(429);
    expect(await signupFrom('2001:db8:7::2')).toBe(429);
    expect(await signupFrom('2001:db8:1:3::1')).toBe(200);
    expect(await signupFrom('203.0.113.8:51234')).toBe(200);
  });

  it("relayed-link requests count against the client's address, not the proxy's: one client cannot spend everyone's", async () => {
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    const ask = (client: string) =>
      spliceUpgrade(relay.url, '/v1/splice', { 'x-forwarded-for': client, 'hangar-host': `host_${'0'.repeat(32)}` });
    const flood: number[] = [];
    for (let i = 0; i < 70; i++) flood.push((await ask('203.0.113.7')).status);
    expect(flood.slice(-3)).toEqual([429, 429, 429]);
    // Another client behind the same proxy is refused only for what it is: not signed in.
    expect((await ask('203.0.113.8')).status).toBe(401);
  });

  it('an X-Forwarded-For with empty entries names the same client for relayed links as for every other request', async () => {
    // Fastify reads `203.0.113.7, ` (a trailing empty entry) as 203.0.113.7; so must the splice path,
    // or one client has two budgets, and a splice keyed by the proxy's own address spends everyone's.
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    const ask = (client: string) =>
      spliceUpgrade(relay.url, '/v1/splice', { 'x-forwarded-for': client, 'hangar-host': `host_${'0'.repeat(32)}` });
    const flood: number[] = [];
    for (let i = 0; i < 70; i++) flood.push((await ask(i % 2 === 0 ? '203.0.113.7, ' : ',203.0.113.7,,\t')).status);
    expect(flood.slice(-3)).toEqual([429, 429, 429]);
    expect((await ask('203.0.113.7')).status).toBe(429);
    // Fastify's own path (a WebSocket upgrade) keys it the same: spent too.
    const device = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${relay.url.replace('http', 'ws')}/v1/device`, {
        headers: { 'x-forwarded-for': '203.0.113.7' },
      });
      socket.on('open', () => (resolve(101), socket.terminate()));
      socket.on('unexpected-response', (_request, response) => (resolve(response.statusCode ?? 0), socket.terminate()));
      socket.on('error', () => resolve(-1));
    });
    expect(device).toBe(429);
    // The proxy's other clients are not.
    expect((await ask('203.0.113.8')).status).toBe(401);
    expect((await ask(', 203.0.113.9 ,')).status).toBe(401);
  });
});

/** auth.login from client `address` (behind --trust-proxy): the status and error code. */
async function loginFrom(relay: TestRelay, address: string, email: string, password: string, key: TestKey = newKey()) {
  const response = await fetch(`${relay.url}/v1/auth.login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({
      email,
      password,
      device: { public_key: key.publicKey, name: 'x' },
      proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
    }),
  });
  const body = (await response.json()) as { error?: { code: string; message: string } };
  return {
    status: response.status,
    message: body.error?.message ?? '',
    retryAfter: response.headers.get('retry-after'),
  };
}

describe('wrong passwords (real limits, client addresses from a trusted proxy)', () => {
  it("a guesser's wrong passwords make the guesser wait, doubling, not the account's owner at another address", async () => {
    const clock = new TestClock();
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true, now: clock.now });
    const owner = await signup(relay.client);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++)
      statuses.push((await loginFrom(relay, '203.0.113.7', owner.email, `wrong guess ${i}`)).status);
    // Five free, the sixth starts a 30 s wait.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429]);
    const waiting = await loginFrom(relay, '203.0.113.7', owner.email, PASSWORD);
    expect(waiting).toMatchObject({ status: 429, retryAfter: '30' });
    expect(waiting.message).toMatch(/too many wrong passwords for \S+ from this address; try again in 30 s/);
    // The owner, elsewhere, signs in: on a new device (pending) and on the one the account trusts.
    expect((await loginFrom(relay, '198.51.100.20', owner.email, PASSWORD)).status).toBe(200);
    expect((await loginFrom(relay, '198.51.100.21', owner.email, PASSWORD, owner.key)).status).toBe(200);
    // After the wait, one more wrong password doubles it.
    clock.advance(31_000);
    expect((await loginFrom(relay, '203.0.113.7', owner.email, 'wrong guess 7')).status).toBe(401);
    expect(await loginFrom(relay, '203.0.113.7', owner.email, 'wrong guess 8')).toMatchObject({
      status: 429,
      retryAfter: '60',
    });
  });

  it('one address guessing many accounts slowly waits after 20 wrong passwords; other addresses do not', async () => {
    const clock = new TestClock();
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true, now: clock.now });
    const owner = await signup(relay.client);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) {
      clock.advance(3_000); // under the 20 requests a minute an address may make
      statuses.push((await loginFrom(relay, '203.0.113.9', uniqueEmail('someone'), `wrong guess ${i}`)).status);
    }
    expect(statuses.slice(0, 21)).toEqual(Array.from({ length: 21 }, () => 401));
    const last = await loginFrom(relay, '203.0.113.9', owner.email, PASSWORD);
    expect(last.status).toBe(429);
    expect(last.message).toMatch(/too many wrong passwords from this address/);
    expect((await loginFrom(relay, '198.51.100.30', owner.email, PASSWORD)).status).toBe(200);
  });

  it('an IPv6 guesser is one address per /64 (a host is given one whole): it waits after 20 wrong passwords', async () => {
    const clock = new TestClock();
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true, now: clock.now });
    const owner = await signup(relay.client);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) {
      clock.advance(3_000);
      const address = `2001:db8:1:2:${(i + 1).toString(16)}::${i % 3 === 0 ? 'a' : 'b'}`;
      statuses.push((await loginFrom(relay, address, uniqueEmail('someone'), `wrong guess ${i}`)).status);
    }
    expect(statuses.slice(0, 21)).toEqual(Array.from({ length: 21 }, () => 401));
    const last = await loginFrom(relay, '2001:db8:1:2:ffff::1', owner.email, PASSWORD);
    expect(last.status).toBe(429);
    expect(last.message).toMatch(/too many wrong passwords from this address/);
    // The next /64, and IPv4 clients (mapped or not), are other addresses.
    expect((await loginFrom(relay, '2001:db8:1:3::1', owner.email, PASSWORD)).status).toBe(200);
    expect((await loginFrom(relay, '::ffff:198.51.100.31', owner.email, PASSWORD)).status).toBe(200);
  });

  it('wrong passwords from one client count as one whatever source port the proxy names', async () => {
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    const owner = await signup(relay.client);
    for (const client of [(i: number) => `203.0.113.7:${40000 + i}`, (i: number) => `[2001:db8:5::${i + 1}]:443`]) {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++)
        statuses.push((await loginFrom(relay, client(i), owner.email, `wrong guess ${i}`)).status);
      // Five free, the sixth starts a wait: as from one address without a port.
      expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429]);
    }
  });

  it('guessing spread over many addresses meets the per-email bound, and a device key the account trusts still signs in', async () => {
    await using relay = await startTestRelay({ rateLimitScale: 1, trustProxy: true });
    const owner = await signup(relay.client);
    const statuses: number[] = [];
    for (let i = 0; i < 101; i++) {
      statuses.push(
        (await loginFrom(relay, `10.0.${Math.floor(i / 250)}.${i % 250}`, owner.email, `wrong guess ${i}`)).status,
      );
    }
    expect(statuses.slice(0, 100).every((s) => s === 401)).toBe(true);
    expect(statuses[100]).toBe(429);
    // A new device needs its password checked, and the email's budget is spent: it waits too.
    const fresh = await loginFrom(relay, '198.51.100.40', owner.email, PASSWORD);
    expect(fresh.status).toBe(429);
    expect(fresh.message).toMatch(/from many addresses; sign in on a device this account already trusts/);
    // The owner's own device key (proven by the login proof) is not the guessers' to lock.
    expect((await loginFrom(relay, '198.51.100.40', owner.email, PASSWORD, owner.key)).status).toBe(200);
    // Wrong passwords on that key have a backoff of their own.
    const onKey: number[] = [];
    for (let i = 0; i < 7; i++) {
      onKey.push((await loginFrom(relay, `192.0.2.${i}`, owner.email, `a typo here ${i}`, owner.key)).status);
    }
    expect(onKey).toEqual([401, 401, 401, 401, 401, 401, 429]);
  });
});

describe('signaling rate limit', () => {
  it('an account that floods signals gets E_RATE_LIMITED for the excess', async () => {
    // A fresh relay: the socket budget of the file above is spent.
    await using relay = await startTestRelay({ rateLimitScale: 1 });
    const { host, hostId, agent, device } = await hostAndDevice(relay);
    const failures: DeviceSignalFailure[] = [];
    device.socket.onSignalError((failure) => failures.push(failure));
    let delivered = 0;
    agent.onSignal(() => delivered++);
    try {
      await waitFor('sockets up', () => agent.isWelcomed && device.socket.isReady);
      // Trickle on a handful of requests (the per-socket cap on waiting requests is not what is tested).
      for (let i = 0; i < 260; i++) {
        device.socket.sendSignal({
          toHost: hostId,
          recipientKey: host.publicKey,
          requestId: `req-flood-${i % 8}`,
          payload: `candidate ${i}`,
        });
      }
      await waitFor('every signal answered or delivered', () => delivered + failures.length >= 260);
      expect(failures.length).toBeGreaterThan(0);
      expect(failures.every((f) => f.error.code === 'E_RATE_LIMITED')).toBe(true);
      expect(delivered).toBeGreaterThanOrEqual(200);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });
});
