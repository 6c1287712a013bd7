import { describe, expect, it } from 'vitest';
import { RELAY_CLOSE, RelaySession, makeLoginProof } from '@hangar/shared';
import {
  PASSWORD,
  login,
  newKey,
  signup,
  uniqueEmail,
  describeEachStorage,
  waitFor,
  rawDeviceSocket as openDevice,
  useTestRelay,
} from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';

describeEachStorage('relay accounts', (relay) => {
  it('a user signs up, logs in from a second device (pending) and refreshes its session', async () => {
    const first = await signup(relay.client);
    expect(first.session.account.email).toBe(first.email);
    expect(first.session.device.status).toBe('first');
    expect(first.session.access_expires_at - Date.now()).toBeLessThanOrEqual(10 * 60_000);

    const second = await login(relay.client, first.email);
    expect(second.session.account.account_id).toBe(first.session.account.account_id);
    expect(second.session.device.status).toBe('pending');

    // Pending, it sees itself only (pending-device.test.ts covers the rest of what it may not do).
    const devices = await relay.client.call('devices.list', {}, { accessToken: second.session.access_token });
    expect(devices.devices.map((d) => d.status)).toEqual(['pending']);
    const all = await relay.client.call('devices.list', {}, { accessToken: first.session.access_token });
    expect(all.devices.map((d) => d.status).sort()).toEqual(['first', 'pending']);

    const session = new RelaySession(relay.client, second.session);
    const refreshed = await session.refresh();
    expect(refreshed.refresh_token).not.toBe(second.session.refresh_token);
    const mine = await session.call('devices.list', {});
    expect(mine.this_device).toBe(second.session.device.device_id);
  });

  it('a session refreshes once for many concurrent calls near expiry (a second refresh would end it as reuse)', async () => {
    const user = await signup(relay.client);
    const stored: string[] = [];
    // This client believes the access token is 30 s from expiry: every call wants a fresh one.
    const session = new RelaySession(relay.client, user.session, {
      now: () => user.session.access_expires_at - 30_000,
      onTokens: (tokens) => {
        stored.push(tokens.refresh_token);
      },
    });
    const results = await Promise.all([1, 2, 3, 4].map(() => session.call('devices.list', {})));
    expect(results.every((r) => r.devices.length === 1)).toBe(true);
    expect(stored).toHaveLength(1);
    expect(session.current.refresh_token).toBe(stored.at(-1));
    // Whatever it did, its latest refresh token is still good: no refresh was ever replayed.
    await relay.client.call('auth.refresh', { refresh_token: session.current.refresh_token });
  });

  it('logging in again with the same device key keeps one device record', async () => {
    const first = await signup(relay.client);
    await login(relay.client, first.email, first.key, 'renamed laptop');
    const devices = await relay.client.call('devices.list', {}, { accessToken: first.session.access_token });
    expect(devices.devices).toHaveLength(1);
    expect(devices.devices[0]!.name).toBe('renamed laptop');
    expect(devices.devices[0]!.status).toBe('first');
  });

  it('a second signup with the same email is refused, and a wrong password says so without telling which part', async () => {
    const first = await signup(relay.client);
    expect((await refusal(signup(relay.client, first.email))).code).toBe('E_EXISTS');
    const key = newKey();
    const wrong = await refusal(
      relay.client.call('auth.login', {
        email: first.email,
        password: 'not the password',
        device: { public_key: key.publicKey, name: 'x' },
        proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: first.email }),
      }),
    );
    expect(wrong.code).toBe('E_AUTH_BAD_CREDENTIALS');
    const unknown = await refusal(login(relay.client, uniqueEmail('nobody')));
    expect(unknown.code).toBe('E_AUTH_BAD_CREDENTIALS');
    expect(unknown.message).toBe(wrong.message);
  });

  it('a login proof made for another relay, or by another key, or stale, is refused', async () => {
    const email = uniqueEmail();
    const key = newKey();
    const base = { email, password: PASSWORD, device: { public_key: key.publicKey, name: 'laptop' } };
    const elsewhere = makeLoginProof(key.signer, { relayOrigin: 'https://evil.example', identity: email });
    expect((await refusal(relay.client.call('auth.signup', { ...base, proof: elsewhere }))).code).toBe(
      'E_AUTH_BAD_SIGNATURE',
    );
    const otherKey = makeLoginProof(newKey().signer, { relayOrigin: relay.client.origin, identity: email });
    expect((await refusal(relay.client.call('auth.signup', { ...base, proof: otherKey }))).code).toBe(
      'E_AUTH_BAD_SIGNATURE',
    );
    const stale = makeLoginProof(key.signer, {
      relayOrigin: relay.client.origin,
      identity: email,
      issuedAt: Date.now() - 6 * 60_000,
    });
    const error = await refusal(relay.client.call('auth.signup', { ...base, proof: stale }));
    expect(error.code).toBe('E_AUTH_BAD_SIGNATURE');
    expect(error.message).toMatch(/clock/);
    // None of these made an account.
    expect((await refusal(login(relay.client, email, key))).code).toBe('E_AUTH_BAD_CREDENTIALS');
  });

  it('a refresh token works once; presenting a spent one ends the whole session', async () => {
    const user = await signup(relay.client);
    const rotated = await relay.client.call('auth.refresh', { refresh_token: user.session.refresh_token });
    const reuse = await refusal(relay.client.call('auth.refresh', { refresh_token: user.session.refresh_token }));
    expect(reuse.code).toBe('E_AUTH_REFRESH_REUSED');
    // The thief's replay also killed the legitimate newer token of the same login.
    const after = await refusal(relay.client.call('auth.refresh', { refresh_token: rotated.refresh_token }));
    expect(after.code).toBe('E_AUTH_REQUIRED');
    // And that login's access tokens, the newest too, are refused at once, not when they expire.
    for (const accessToken of [user.session.access_token, rotated.access_token]) {
      expect((await refusal(relay.client.call('hosts.list', {}, { accessToken }))).code).toBe('E_AUTH_REQUIRED');
    }
    const again = await login(relay.client, user.email, user.key);
    const audit = await relay.client.call('audit.list', {}, { accessToken: again.session.access_token });
    expect(audit.entries.map((e) => e.action)).toContain('auth.refresh_reused');
  });

  it("logout refuses that login's access tokens and closes its device sockets at once; the device's other login stays", async () => {
    const user = await signup(relay.client);
    const other = await login(relay.client, user.email, user.key); // the same device, signed in twice
    const ended = openDevice(relay.url, user.session.access_token);
    const kept = openDevice(relay.url, other.session.access_token);
    try {
      for (const socket of [ended, kept]) await waitFor('ready', () => socket.messages.find((m) => m.type === 'ready'));
      await relay.client.call('auth.logout', { refresh_token: user.session.refresh_token });
      const refused = await refusal(relay.client.call('hosts.list', {}, { accessToken: user.session.access_token }));
      expect(refused.code).toBe('E_AUTH_REQUIRED');
      expect(refused.message).toMatch(/log in again/);
      const closed = await waitFor('the logged-out socket closed', () => ended.closed());
      expect(closed.code).toBe(RELAY_CLOSE.authFailed);
      expect(ended.messages.at(-1)).toMatchObject({ type: 'error', error: { code: 'E_AUTH_REQUIRED' } });
      // The same token cannot open a new socket either.
      const reopened = openDevice(relay.url, user.session.access_token);
      expect((await waitFor('refused', () => reopened.closed())).code).toBe(RELAY_CLOSE.authFailed);

      await relay.client.call('hosts.list', {}, { accessToken: other.session.access_token });
      expect(kept.closed()).toBeUndefined();
    } finally {
      ended.socket.terminate();
      kept.socket.terminate();
    }
  });

  it('after logout the refresh token is dead, and a second logout is harmless', async () => {
    const user = await signup(relay.client);
    await relay.client.call('auth.logout', { refresh_token: user.session.refresh_token });
    await relay.client.call('auth.logout', { refresh_token: user.session.refresh_token });
    const error = await refusal(relay.client.call('auth.refresh', { refresh_token: user.session.refresh_token }));
    expect(error.code).toBe('E_AUTH_REQUIRED');
    expect(error.message).toMatch(/log in again/);
  });

  it('procedures for signed-in devices refuse a missing or forged access token', async () => {
    const missing = await refusal(relay.client.call('hosts.list', {}, { accessToken: 'x'.repeat(40) }));
    expect(missing.code).toBe('E_AUTH_REQUIRED');
    const user = await signup(relay.client);
    const [header, payload] = user.session.access_token.split('.');
    const forged = `${header}.${payload}.${'A'.repeat(43)}`;
    expect((await refusal(relay.client.call('hosts.list', {}, { accessToken: forged }))).code).toBe('E_AUTH_REQUIRED');
  });

  it('the audit log records signup, login and logout for the account owner, and the logs never hold a secret', async () => {
    const user = await signup(relay.client);
    const second = await login(relay.client, user.email);
    // A pending device cannot read it.
    const denied = await refusal(relay.client.call('audit.list', {}, { accessToken: second.session.access_token }));
    expect(denied.code).toBe('E_FORBIDDEN');
    await relay.client.call('auth.logout', { refresh_token: second.session.refresh_token });
    const audit = await relay.client.call('audit.list', {}, { accessToken: user.session.access_token });
    const actions = audit.entries.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['account.signup', 'auth.login', 'auth.logout']));
    expect(audit.entries.every((e) => e.ip === '127.0.0.1')).toBe(true);

    const logs = relay.logs.join('\n');
    expect(logs).toMatch(/"reqId":"req_[0-9a-f]{16}"/);
    expect(logs).not.toContain(PASSWORD);
    expect(logs).not.toContain(user.session.refresh_token);
    expect(logs).not.toContain(user.session.access_token);
  });
});

describe('a logout racing a sign-in', () => {
  // Runs once, in authenticate, after its read of the device and login: what ends the login then
  // is announced before the socket is the hub's to close.
  let during: (() => Promise<unknown>) | undefined;
  const relay = useTestRelay('sqlite', {
    afterAuthRead: async () => {
      const run = during;
      during = undefined;
      await run?.();
    },
  });

  it('a device socket whose login is ended between its auth read and its registration is closed, and is sent nothing before', async () => {
    const user = await signup(relay.client);
    during = () => relay.client.call('auth.logout', { refresh_token: user.session.refresh_token });
    const socket = openDevice(relay.url, user.session.access_token);
    try {
      const closed = await waitFor('the socket closed', () => socket.closed());
      expect(during).toBeUndefined(); // the logout ran in that gap
      expect(closed.code).toBe(RELAY_CLOSE.authFailed);
      // Nothing of the ended login's reached it: no `ready`, only why it is closed.
      expect(socket.messages).toEqual([
        expect.objectContaining({ type: 'error', error: expect.objectContaining({ code: 'E_AUTH_REQUIRED' }) }),
      ]);
    } finally {
      socket.socket.terminate();
    }
  });
});
