import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INVITE_TTL_MS } from '../src/api/members.js';
import { RELAY_CLOSE, makeLoginProof, type RelayClient } from '@hangar/shared';
import {
  PASSWORD,
  STORAGE_KINDS,
  enrollParams,
  login,
  newHost,
  newKey,
  rawDeviceSocket,
  signup,
  startTestRelay,
  statementOf,
  tempDir,
  TestClock,
  uniqueEmail,
  useTestRelay,
  waitFor,
  endorse,
  type SignedIn,
} from './support/relay-fixture.js';

/**
 * The owner removes a person (PROTOCOL.md "Team members: removing a person"): the relay holds no
 * trust, so the owner's device signs a revocation of each device of theirs; the relay refuses the
 * removal without them, then forgets the membership and the person's logins. Billing is off here
 * (every plan allowed); the Team plan gate is billing-members.test.ts's.
 */
describe.each(STORAGE_KINDS)('removing team members and withdrawing invitations (%s)', (kind) => {
  const relay = useTestRelay(kind);
  const client = (): RelayClient => relay.client;
  const as = (who: SignedIn) => ({ accessToken: who.session.access_token });

  async function accept(owner: SignedIn, email: string, name = 'ana-laptop'): Promise<SignedIn> {
    const invite = await client().call('account.invite', { email }, as(owner));
    return acceptToken(invite.invite_token, email, name);
  }

  async function acceptToken(inviteToken: string, email: string, name = 'ana-laptop'): Promise<SignedIn> {
    const key = newKey();
    const proof = makeLoginProof(key.signer, { relayOrigin: client().origin, identity: email });
    const session = await client().call('account.accept_invite', {
      invite_token: inviteToken,
      email,
      password: PASSWORD,
      device: { public_key: key.publicKey, name },
      proof,
    });
    return { key, session, email };
  }

  /** An owner and Ana, a member with an approved laptop and a phone never approved. */
  async function teamWithAna() {
    const owner = await signup(client());
    const anaEmail = uniqueEmail('ana');
    const laptop = await accept(owner, anaEmail);
    await endorse(client(), owner, laptop, 'ana-laptop');
    const phone = await login(client(), anaEmail, newKey(), 'ana-phone');
    expect(phone.session.device.status).toBe('pending');
    return { owner, anaEmail, laptop, phone };
  }

  it('a member cannot remove anyone, the owner cannot remove themself, and a stranger is not found', async () => {
    const { owner, anaEmail, laptop } = await teamWithAna();
    // Ana's laptop is trusted, and still only the owner removes people.
    await expect(client().call('account.remove_member', { email: owner.email }, as(laptop))).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
      message: expect.stringMatching(/owner/),
    });
    await expect(client().call('account.remove_member', { email: owner.email }, as(owner))).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
      message: expect.stringMatching(/cannot remove themself/),
    });
    await expect(
      client().call('account.remove_member', { email: uniqueEmail('nobody') }, as(owner)),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    const members = await client().call('account.members', {}, as(owner));
    expect(members.members.map((m) => m.email)).toEqual([owner.email, anaEmail]);
  });

  it('removal needs a signed revocation of each approved device; then their logins, sockets and password end', async () => {
    const { owner, anaEmail, laptop, phone } = await teamWithAna();
    const socket = rawDeviceSocket(relay.url, laptop.session.access_token);
    await waitFor('the laptop socket', () => socket.messages.length > 0);

    // Without a revocation of the approved laptop: refused, named, and nothing changes.
    await expect(client().call('account.remove_member', { email: anaEmail }, as(owner))).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
      message: expect.stringContaining('ana-laptop'),
    });
    // A revocation signed by someone else's key is refused before anything is stored.
    const forged = statementOf(laptop, 'revoke', laptop.key, 'ana-laptop');
    await expect(
      client().call(
        'account.remove_member',
        { email: anaEmail, revocations: [{ device_id: laptop.session.device.device_id, statement: forged }] },
        as(owner),
      ),
    ).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
    expect((await client().call('account.members', {}, as(owner))).members).toHaveLength(2);

    const removed = await client().call(
      'account.remove_member',
      {
        email: anaEmail,
        revocations: [
          {
            device_id: laptop.session.device.device_id,
            statement: statementOf(owner, 'revoke', laptop.key, 'ana-laptop'),
          },
        ],
      },
      as(owner),
    );
    expect(removed.revoked.map((d) => d.name)).toEqual(['ana-laptop']);
    expect(removed.deleted.map((d) => d.name)).toEqual(['ana-phone']); // never approved: simply gone

    // Hosts get the owner's revocation with the account's statements.
    const { statements } = await client().call('statements.list', { since: 0 }, as(owner));
    expect(statements.at(-1)).toMatchObject({ kind: 'revoke', subject_device_key: laptop.key.publicKey });
    // Her open socket closed at once, saying why; her tokens and password no longer work.
    const closed = await waitFor('the laptop socket to close', () => socket.closed());
    expect(closed.code).toBe(RELAY_CLOSE.revoked);
    expect(closed.reason).toMatch(/no longer a member/);
    // Each later call of hers says why, as her socket did (not only "revoked").
    await expect(client().call('devices.list', {}, as(laptop))).rejects.toMatchObject({
      code: 'E_AUTH_DEVICE_REVOKED',
      message: expect.stringMatching(/you are no longer a member of .+'s Hangar account/),
    });
    await expect(client().call('devices.list', {}, as(phone))).rejects.toMatchObject({ code: 'E_AUTH_REQUIRED' });
    await expect(client().call('auth.refresh', { refresh_token: laptop.session.refresh_token })).rejects.toMatchObject({
      code: expect.stringMatching(/^E_AUTH/),
    });
    // Her password is forgotten with her membership (no hash of it kept): the right one gets the
    // refusal a wrong one gets, saying nothing of who was removed.
    await expect(login(client(), anaEmail, newKey(), 'ana-new')).rejects.toMatchObject({
      code: 'E_AUTH_BAD_CREDENTIALS',
    });
    const wrong = newKey();
    await expect(
      client().call('auth.login', {
        email: anaEmail,
        password: 'not her password at all',
        device: { public_key: wrong.publicKey, name: 'x' },
        proof: makeLoginProof(wrong.signer, { relayOrigin: client().origin, identity: anaEmail }),
      }),
    ).rejects.toMatchObject({ code: 'E_AUTH_BAD_CREDENTIALS' });

    const members = await client().call('account.members', {}, as(owner));
    expect(members.members.map((m) => m.email)).toEqual([owner.email]);
    const devices = await client().call('devices.list', {}, as(owner));
    expect(devices.devices.map((d) => [d.name, d.status])).toEqual([
      ['laptop', 'first'],
      ['ana-laptop', 'revoked'],
    ]);
    const audit = await client().call('audit.list', {}, as(owner));
    const entry = audit.entries.find((e) => e.action === 'member.removed');
    expect(entry?.by).toBe(owner.email);
    expect(entry?.detail).toMatchObject({ email: anaEmail, revoked: ['ana-laptop'], deleted: ['ana-phone'] });
    socket.socket.terminate();

    // Invited again, she joins again as a new person with a new device.
    const back = await accept(owner, anaEmail, 'ana-again');
    expect(back.session.device.status).toBe('pending');
    await expect(login(client(), anaEmail, newKey(), 'ana-other')).resolves.toMatchObject({ email: anaEmail });
  });

  it("what a removed member made or holds is refused after: an unused enrollment token, the laptop's login, a new socket", async () => {
    const { owner, anaEmail, laptop } = await teamWithAna();
    const host = newHost('ana-box');
    const token = await client().call('hosts.enroll_token', { name: host.name }, as(laptop));
    // A member invites no one.
    await expect(client().call('account.invite', { email: uniqueEmail('friend') }, as(laptop))).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
    });
    await client().call(
      'account.remove_member',
      {
        email: anaEmail,
        revocations: [
          {
            device_id: laptop.session.device.device_id,
            statement: statementOf(owner, 'revoke', laptop.key, 'ana-laptop'),
          },
        ],
      },
      as(owner),
    );
    await expect(
      client().call('hosts.enroll', enrollParams(token.token_id, token.relay_secret, host)),
    ).rejects.toMatchObject({ code: 'E_TOKEN_INVALID', message: expect.stringMatching(/revoked/) });
    await expect(client().call('hosts.enroll_token', { name: 'x' }, as(laptop))).rejects.toMatchObject({
      code: 'E_AUTH_DEVICE_REVOKED',
    });
    await expect(client().call('auth.refresh', { refresh_token: laptop.session.refresh_token })).rejects.toMatchObject({
      code: expect.stringMatching(/^E_AUTH/),
    });
    const socket = rawDeviceSocket(relay.url, laptop.session.access_token);
    try {
      const closed = await waitFor('the socket refused', () => socket.closed());
      expect(closed.code).not.toBe(1000);
      expect(socket.messages.some((m) => (m as { type?: string }).type === 'ready')).toBe(false);
    } finally {
      socket.socket.terminate();
    }
    const { hosts } = await client().call('hosts.list', {}, as(owner));
    expect(hosts.map((h) => h.name)).not.toContain('ana-box');
  });

  it('the owner lists and withdraws invitations (a withdrawn token is refused), and at most 50 wait at once', async () => {
    const owner = await signup(client());
    const first = uniqueEmail('bob');
    const invite = await client().call('account.invite', { email: first }, as(owner));
    const listed = await client().call('account.invites', {}, as(owner));
    expect(listed.invites).toEqual([{ email: first, invited_at: expect.any(Number), expires_at: invite.expires_at }]);
    expect(JSON.stringify(listed)).not.toContain(invite.invite_token);

    await client().call('account.withdraw_invite', { email: first }, as(owner));
    await expect(acceptToken(invite.invite_token, first)).rejects.toMatchObject({ code: 'E_TOKEN_INVALID' });
    expect((await client().call('account.invites', {}, as(owner))).invites).toEqual([]);
    await expect(client().call('account.withdraw_invite', { email: first }, as(owner))).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });

    // A member neither lists nor withdraws them.
    const ana = await accept(owner, uniqueEmail('ana'));
    await expect(client().call('account.invites', {}, as(ana))).rejects.toMatchObject({ code: 'E_FORBIDDEN' });

    const emails = Array.from({ length: 50 }, () => uniqueEmail('many'));
    for (const email of emails) await client().call('account.invite', { email }, as(owner));
    await expect(client().call('account.invite', { email: uniqueEmail('one-more') }, as(owner))).rejects.toMatchObject({
      code: 'E_RATE_LIMITED',
      message: expect.stringContaining('hangar team withdraw'),
    });
    // Inviting one of them again replaces theirs; withdrawing one makes room.
    await client().call('account.invite', { email: emails[0]! }, as(owner));
    await client().call('account.withdraw_invite', { email: emails[1]! }, as(owner));
    await client().call('account.invite', { email: uniqueEmail('one-more') }, as(owner));
    expect((await client().call('account.invites', {}, as(owner))).invites).toHaveLength(50);
  });
});

describe.each(STORAGE_KINDS)('expired invitations (%s)', (kind) => {
  const storage = useTestRelay(kind).storage;

  it('are deleted by the sweeper a day after they expire (until then: "expired"; then not valid)', async () => {
    const clock = new TestClock();
    const dataDir = kind === 'sqlite' ? tempDir('invites') : undefined;
    const options = dataDir ? { storage: { kind: 'sqlite' as const, dataDir } } : await storage.relayOptions();
    try {
      await using first = await startTestRelay({ ...options, now: clock.now });
      const owner = await signup(first.client);
      const email = uniqueEmail('late');
      const invite = await first.client.call('account.invite', { email }, { accessToken: owner.session.access_token });
      const accept = (client: RelayClient) => {
        const key = newKey();
        return client.call('account.accept_invite', {
          invite_token: invite.invite_token,
          email,
          password: PASSWORD,
          device: { public_key: key.publicKey, name: 'late' },
          proof: makeLoginProof(key.signer, { relayOrigin: client.origin, identity: email, issuedAt: clock.now() }),
        });
      };
      clock.advance(INVITE_TTL_MS + 60_000);
      await expect(accept(first.client)).rejects.toMatchObject({ code: 'E_TOKEN_EXPIRED' });
      // A day later, the next relay's first sweep (at its start) deletes it.
      clock.advance(24 * 60 * 60_000);
      await first.stop();
      await using second = await startTestRelay({ ...options, now: clock.now });
      await expect(accept(second.client)).rejects.toMatchObject({ code: 'E_TOKEN_INVALID' });
    } finally {
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(STORAGE_KINDS)('a member signing in as they are removed (%s)', (kind) => {
  // Runs once, in a member's auth.login, after their password checked out and before their device
  // and session are made: the owner's removal commits in that gap.
  let during: (() => Promise<unknown>) | undefined;
  const relay = useTestRelay(kind, {
    afterMemberPasswordCheck: async () => {
      const run = during;
      during = undefined;
      await run?.();
    },
  });

  it('a removal that commits between the password check and the new device: refused, no device, no login', async () => {
    const owner = await signup(relay.client);
    const as = { accessToken: owner.session.access_token };
    const email = uniqueEmail('ana');
    const invite = await relay.client.call('account.invite', { email }, as);
    const key = newKey();
    await relay.client.call('account.accept_invite', {
      invite_token: invite.invite_token,
      email,
      password: PASSWORD,
      device: { public_key: key.publicKey, name: 'ana-first' },
      proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
    });
    during = () => relay.client.call('account.remove_member', { email, revocations: [] }, as);
    await expect(login(relay.client, email, newKey(), 'ana-new')).rejects.toMatchObject({
      code: expect.stringMatching(/^E_(AUTH_BAD_CREDENTIALS|FORBIDDEN)$/),
    });
    expect(during).toBeUndefined(); // the removal ran in that gap
    const { devices } = await relay.client.call('devices.list', {}, as);
    expect(devices.map((d) => d.name)).toEqual(['laptop']);
    const members = await relay.client.call('account.members', {}, as);
    expect(members.members.map((m) => m.email)).toEqual([owner.email]);
  });
});
