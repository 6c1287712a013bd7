import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { RELAY_CLOSE, makeLoginProof, type RelayToDevice } from '@hangar/shared';
import { PASSWORD, TestClock, newKey, signup, startTestRelay, uniqueEmail, waitFor } from './support/relay-fixture.js';

function openDevice(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/device`);
  const messages: RelayToDevice[] = [];
  let closed: { code: number; reason: string } | undefined;
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as RelayToDevice));
  socket.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
  const opened = new Promise((resolve) => socket.once('open', resolve));
  return { socket, messages, opened, closed: () => closed };
}

describe('the device socket', () => {
  it('closes when its access token runs out, unless the device renews it first', async () => {
    const clock = new TestClock();
    await using relay = await startTestRelay({ now: clock.now });
    const user = await signup(relay.client);
    // The token was issued now and lasts 10 minutes: move the relay's clock to 2 s before its end.
    clock.advance(10 * 60_000 - 2_000);
    const lapsing = openDevice(relay.url);
    const renewing = openDevice(relay.url);
    try {
      for (const device of [lapsing, renewing]) {
        await device.opened;
        device.socket.send(JSON.stringify({ type: 'auth', access_token: user.session.access_token }));
        await waitFor('ready', () => device.messages.find((m) => m.type === 'ready'));
      }
      const fresh = await relay.client.call('auth.refresh', { refresh_token: user.session.refresh_token });
      renewing.socket.send(JSON.stringify({ type: 'auth', access_token: fresh.access_token }));
      const closed = await waitFor('the lapsing socket closed', () => lapsing.closed(), 5_000);
      expect(closed.code).toBe(RELAY_CLOSE.authExpired);
      expect(lapsing.messages.at(-1)).toMatchObject({ type: 'error', error: { code: 'E_AUTH_EXPIRED' } });
      expect(renewing.messages.filter((m) => m.type === 'ready')).toHaveLength(2);
      expect(renewing.closed()).toBeUndefined();
    } finally {
      lapsing.socket.terminate();
      renewing.socket.terminate();
    }
  });

  it('a socket that never authenticates, or sends garbage, is closed with the reason', async () => {
    await using relay = await startTestRelay();
    const garbage = openDevice(relay.url);
    try {
      await garbage.opened;
      garbage.socket.send('{"type":"auth","access_token":5}');
      const closed = await waitFor('closed', () => garbage.closed());
      expect(closed.code).toBe(RELAY_CLOSE.protocol);
      expect(garbage.messages[0]).toMatchObject({ type: 'error', error: { code: 'E_BAD_REQUEST' } });
      expect(JSON.stringify(garbage.messages[0])).toContain('access_token');
    } finally {
      garbage.socket.terminate();
    }
  });
});

describe('behind a reverse proxy (--trust-proxy)', () => {
  it("takes the client's address and scheme from X-Forwarded-*, and ignores them without the flag", async () => {
    await using proxied = await startTestRelay({ trustProxy: true });
    await using direct = await startTestRelay();
    const forwarded = {
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'relay.example',
    };
    const info = async (url: string) =>
      (await (
        await fetch(`${url}/v1/relay.info`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...forwarded },
          body: '{}',
        })
      ).json()) as { origin: string };
    expect((await info(proxied.url)).origin).toBe('https://relay.example');
    expect((await info(direct.url)).origin).toBe(direct.url);

    // A device signs for the origin it reached (the proxy's); the audit log has the real client address.
    const email = uniqueEmail('proxied');
    const key = newKey();
    const response = await fetch(`${proxied.url}/v1/auth.signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...forwarded },
      body: JSON.stringify({
        email,
        password: PASSWORD,
        device: { public_key: key.publicKey, name: 'laptop' },
        proof: makeLoginProof(key.signer, { relayOrigin: 'https://relay.example', identity: email }),
      }),
    });
    expect(response.status).toBe(200);
    const session = (await response.json()) as { access_token: string };
    const audit = await proxied.client.call('audit.list', {}, { accessToken: session.access_token });
    expect(audit.entries[0]?.ip).toBe('203.0.113.7');
  });
});
