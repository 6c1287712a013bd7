import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HangarError, RelayClient, encodeEnrollToken, parseEnrollToken, verifyPresence } from '@hangar/shared';
import {
  TestClock,
  agentSocket,
  deviceSocket,
  enroll,
  enrollLine,
  enrollParams,
  login,
  newHost,
  post,
  signup,
  startTestRelay,
  waitFor,
  ownerWithHost,
  describeEachStorage,
  useTestRelay,
  endorse,
  revoke,
} from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';

describeEachStorage('enrolling a host', (relay) => {
  const storage = relay.storage;

  it('the pasted line enrolls the host, whose agent then shows online with its signed addresses', async () => {
    const owner = await signup(relay.client);
    // The device makes the end-to-end part itself and prints one line; the relay never sees `e`.
    const { line, token: made } = await enrollLine(relay.client, owner);
    expect(made.expires_at - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(made.expires_at - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    expect(line).toMatch(/^hgr1_[A-Za-z0-9_-]+$/);

    // On the host: parse the line, enroll with the host's own key.
    const token = parseEnrollToken(`  ${line}\n`);
    const host = newHost('mini');
    const hostClient = new RelayClient({ url: token.r });
    const enrolled = await hostClient.call('hosts.enroll', enrollParams(token.i, token.s, host));
    expect(enrolled.account_id).toBe(owner.session.account.account_id);

    const device = deviceSocket(relay.url, owner);
    await waitFor('the enrolled host, offline', () => device.hosts.get(enrolled.host_id)?.online === false);
    const connectedAt = performance.now();
    const agent = agentSocket(relay.url, enrolled.host_id, host);
    try {
      const online = await waitFor('the host online', () =>
        device.seen.find((s) => s.host.host_id === enrolled.host_id && s.host.online && s.at >= connectedAt),
      );
      expect(online.at - connectedAt).toBeLessThan(2_000);
      const withRecord = await waitFor('its presence record', () => {
        const seen = device.hosts.get(enrolled.host_id);
        return seen?.record ? seen : undefined;
      });
      expect(withRecord.public_key).toBe(host.publicKey);
      expect(withRecord.cert_fingerprint).toBe(host.certFingerprint);
      expect(verifyPresence(host.publicKey, withRecord.record!, withRecord.signature!)).toBe(true);
      const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
      expect(listed.hosts.map((h) => [h.name, h.online])).toEqual([['mini', true]]);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
    const audit = await relay.client.call('audit.list', {}, { accessToken: owner.session.access_token });
    expect(audit.entries.map((e) => e.action)).toEqual(
      expect.arrayContaining(['enroll_token.created', 'host.enrolled']),
    );
  });

  it('a token works once: the second use is refused and audited', async () => {
    const { owner, token } = await ownerWithHost(relay.client);
    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(token.token_id, token.relay_secret, newHost('other'))),
    );
    expect(error.code).toBe('E_TOKEN_USED');
    expect(error.message).toMatch(/hangar hosts enroll-token/);
    const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    expect(listed.hosts).toHaveLength(1);
    const audit = await relay.client.call('audit.list', {}, { accessToken: owner.session.access_token });
    expect(audit.entries.find((e) => e.action === 'enroll.refused')?.detail).toMatchObject({ reason: 'E_TOKEN_USED' });
  });

  it('a wrong secret, or a proof made by another key than the one enrolled, is refused and enrolls nothing', async () => {
    const owner = await signup(relay.client);
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: owner.session.access_token },
    );
    const host = newHost();
    const wrongSecret = await refusal(
      relay.client.call('hosts.enroll', enrollParams(made.token_id, randomBytes(32).toString('hex'), host)),
    );
    expect(wrongSecret.code).toBe('E_TOKEN_INVALID');
    // A key swapped in transit: the proof was signed by another key than the one presented.
    const swapped = {
      ...enrollParams(made.token_id, made.relay_secret, host),
      host: { ...enrollParams(made.token_id, made.relay_secret, newHost()).host },
    };
    expect((await refusal(relay.client.call('hosts.enroll', swapped))).code).toBe('E_AUTH_BAD_SIGNATURE');
    const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    expect(listed.hosts).toEqual([]);
    // The token was not spent by the refusals: the real host still enrolls with it.
    await relay.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, host));
  });

  it("a host stays in its account: another account's token cannot take it, and that account never sees it", async () => {
    const alice = await signup(relay.client);
    const bob = await signup(relay.client);
    const { host, hostId } = await enroll(relay.client, alice);
    const bobsToken = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: bob.session.access_token },
    );
    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(bobsToken.token_id, bobsToken.relay_secret, host)),
    );
    expect(error.code).toBe('E_HOST_OTHER_ACCOUNT');
    expect((await relay.client.call('hosts.list', {}, { accessToken: bob.session.access_token })).hosts).toEqual([]);
    // Bob cannot remove it either.
    const remove = await refusal(
      relay.client.call('hosts.remove', { host_id: hostId }, { accessToken: bob.session.access_token }),
    );
    expect(remove.code).toBe('E_NOT_FOUND');
  });

  it('logging out ends the enrollment tokens that login made and nobody used; another login of the account keeps its own', async () => {
    const owner = await signup(relay.client);
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: owner.session.access_token },
    );
    const kept = await relay.client.call(
      'hosts.enroll_token',
      { name: 'vps' },
      { accessToken: owner.session.access_token },
    );
    // The same computer signs in again (a second login of the same device), then the first login ends.
    const again = await login(relay.client, owner.email, owner.key, 'laptop');
    const second = await relay.client.call(
      'hosts.enroll_token',
      { name: 'pi' },
      { accessToken: again.session.access_token },
    );
    await relay.client.call('auth.logout', { refresh_token: owner.session.refresh_token });

    for (const token of [made, kept]) {
      const error = await refusal(
        relay.client.call('hosts.enroll', enrollParams(token.token_id, token.relay_secret, newHost('mini'))),
      );
      expect(error.code).toBe('E_TOKEN_INVALID');
      expect(error.message).toMatch(/logged out|login .*ended/);
      expect(error.message).toMatch(/hangar hosts enroll-token/);
    }
    const listed = await relay.client.call('hosts.list', {}, { accessToken: again.session.access_token });
    expect(listed.hosts).toEqual([]);
    const audit = await relay.client.call('audit.list', {}, { accessToken: again.session.access_token });
    expect(audit.entries.filter((e) => e.action === 'enroll.refused').map((e) => e.detail)).toEqual(
      expect.arrayContaining([expect.objectContaining({ token_id: made.token_id, reason: 'E_TOKEN_INVALID' })]),
    );
    // What the login still signed in made stays usable.
    await relay.client.call('hosts.enroll', enrollParams(second.token_id, second.relay_secret, newHost('pi')));
  });

  it('a token made by a computer that waits for approval again (its approver revoked) enrolls nothing', async () => {
    const owner = await signup(relay.client);
    const tablet = await login(relay.client, owner.email, undefined, 'tablet');
    const phone = await login(relay.client, owner.email, undefined, 'phone');
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, tablet, phone, 'phone');
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: phone.session.access_token },
    );
    // The tablet that approved the phone is revoked: the phone waits for approval again.
    await revoke(relay.client, owner, tablet, 'tablet');
    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, newHost('mini'))),
    );
    expect(error.code).toBe('E_TOKEN_INVALID');
    expect(error.message).toMatch(/no longer trusted/);
    expect(error.message).toMatch(/hangar hosts enroll-token/);
    const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    expect(listed.hosts).toEqual([]);
  });

  it('an expired token is refused (15 minutes, on the relay clock)', async () => {
    const clock = new TestClock();
    await using clocked = await startTestRelay({ ...(await storage.relayOptions()), now: clock.now });
    const owner = await signup(clocked.client);
    const made = await clocked.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: owner.session.access_token },
    );
    clock.advance(15 * 60_000 + 1_000);
    const error = await refusal(
      clocked.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, newHost())),
    );
    expect(error.code).toBe('E_TOKEN_EXPIRED');
    expect(error.details?.['status']).toBe(410);
  });

  it('a malformed enrollment line is refused with what to do', () => {
    expect(() => parseEnrollToken('hgr2_abc')).toThrow(/not an enrollment token.*hgr1_/);
    expect(() => parseEnrollToken('hgr1_!!!')).toThrow(/damaged/);
    const bad = encodeEnrollToken({
      v: 1,
      r: 'http://relay.example',
      i: `tok_${'a'.repeat(32)}`,
      s: 'b'.repeat(64),
      e: 'c'.repeat(64),
      d: 'd'.repeat(64),
    }).replace(/.$/, '');
    expect(() => parseEnrollToken(bad)).toThrow(HangarError);
  });

  it('a removed host is told to stop dialing', async () => {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    try {
      await waitFor('agent online', () => agent.isWelcomed);
      const stopped = new Promise<string>((resolve) =>
        agent.onState(
          (state) => state.state === 'offline' && state.retry_in_ms === null && resolve(state.error.message),
        ),
      );
      await relay.client.call('hosts.remove', { host_id: hostId }, { accessToken: owner.session.access_token });
      expect(await stopped).toMatch(/removed/);
    } finally {
      agent.dispose();
    }
    const raw = await post(relay.url, 'hosts.list', {}, owner.session.access_token);
    expect(raw.body['hosts']).toEqual([]);
  });
});

describe.each(['sqlite', 'postgres'] as const)('an enrollment racing a logout (%s)', (kind) => {
  // Runs once, in hosts.enroll, after its checks of the token's computer and login and before the
  // token is spent: a logout then must still end the token.
  let during: (() => Promise<unknown>) | undefined;
  const relay = useTestRelay(kind, {
    afterEnrollChecks: async () => {
      const run = during;
      during = undefined;
      await run?.();
    },
  });

  it('a logout between the checks and the spending of the token enrolls nothing', async () => {
    const owner = await signup(relay.client);
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      { accessToken: owner.session.access_token },
    );
    const again = await login(relay.client, owner.email, owner.key, 'laptop');
    during = () => relay.client.call('auth.logout', { refresh_token: owner.session.refresh_token });
    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, newHost('mini'))),
    );
    expect(during).toBeUndefined(); // the logout ran in that gap
    expect(error.code).toBe('E_TOKEN_INVALID');
    expect(error.message).toMatch(/logged out/);
    const listed = await relay.client.call('hosts.list', {}, { accessToken: again.session.access_token });
    expect(listed.hosts).toEqual([]);
    const audit = await relay.client.call('audit.list', {}, { accessToken: again.session.access_token });
    expect(audit.entries.filter((e) => e.action === 'enroll.refused').map((e) => e.detail)).toEqual([
      expect.objectContaining({ token_id: made.token_id, reason: 'E_TOKEN_INVALID' }),
    ]);
  });
});
