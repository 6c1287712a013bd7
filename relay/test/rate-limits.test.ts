import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { makeLoginProof, type DeviceSignalFailure } from '@hangar/shared';
import {
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

  it('password guesses for one account are limited even before the per-address budget runs out', async () => {
    const email = uniqueEmail('target');
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const key = newKey();
      const response = await post(relay.url, 'auth.login', {
        email,
        password: `guess number ${i}`,
        device: { public_key: key.publicKey, name: 'x' },
        proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
      });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429]);
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
