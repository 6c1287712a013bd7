import { describe, expect, it } from 'vitest';
import { RelayClient, makeLoginProof } from '@hangar/shared';
import { useBillingRelay, upgrade, type BillingRelay } from './support/billing-fixture.js';
import {
  PASSWORD,
  STORAGE_KINDS,
  login,
  newKey,
  signup,
  uniqueEmail,
  endorse,
  revoke,
  type SignedIn,
} from './support/relay-fixture.js';

describe.each(STORAGE_KINDS)('team members (%s)', (kind) => {
  let billing: BillingRelay;
  let client: RelayClient;
  useBillingRelay(kind, (relay, relayClient) => ([billing, client] = [relay, relayClient]));

  async function accept(inviteToken: string, email: string, key = newKey()): Promise<SignedIn> {
    const proof = makeLoginProof(key.signer, { relayOrigin: client.origin, identity: email });
    const session = await client.call('account.accept_invite', {
      invite_token: inviteToken,
      email,
      password: PASSWORD,
      device: { public_key: key.publicKey, name: 'ana-laptop' },
      proof,
    });
    return { key, session, email };
  }

  it('inviting people needs the Team plan', async () => {
    const owner = await signup(client);
    await expect(
      client.call('account.invite', { email: uniqueEmail('ana') }, { accessToken: owner.session.access_token }),
    ).rejects.toMatchObject({ code: 'E_PLAN_LIMIT', message: expect.stringMatching(/upgrade team/) });
  });

  it('on Team the owner invites by email; the member joins with their own device, and the audit log says who did what', async () => {
    const owner = await signup(client);
    await upgrade(client, owner, billing.standIn, 'team');
    const anaEmail = uniqueEmail('ana');
    const invite = await client.call(
      'account.invite',
      { email: anaEmail },
      { accessToken: owner.session.access_token },
    );
    expect(invite.invite_token).toMatch(/^inv1_/);

    // The wrong email, or a second acceptance, is refused.
    await expect(accept(invite.invite_token, uniqueEmail('eve'))).rejects.toMatchObject({ code: 'E_TOKEN_INVALID' });
    const ana = await accept(invite.invite_token, anaEmail);
    await expect(accept(invite.invite_token, anaEmail)).rejects.toMatchObject({ code: 'E_TOKEN_INVALID' });
    expect(ana.session.account.account_id).toBe(owner.session.account.account_id);
    expect(ana.session.device.status).toBe('pending'); // like any new device, until a trusted one approves it

    const members = await client.call('account.members', {}, { accessToken: owner.session.access_token });
    expect(members.members.map((m) => [m.email, m.role, m.status])).toEqual([
      [owner.email, 'owner', 'active'],
      [anaEmail, 'member', 'active'],
    ]);

    // The owner approves Ana's device; Ana signs in again later with her own password.
    await endorse(client, owner, ana, 'ana-laptop');
    const again = await login(client, anaEmail, ana.key, 'ana-laptop');
    expect(again.session.device.device_id).toBe(ana.session.device.device_id);
    // A member reads the status but does not buy, manage billing or invite.
    const status = await client.call('billing.status', {}, { accessToken: again.session.access_token });
    expect(status).toMatchObject({ plan: 'team', role: 'member', minutes: { included: null } });
    await expect(client.call('billing.portal', {}, { accessToken: again.session.access_token })).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
    });
    await expect(
      client.call('account.invite', { email: uniqueEmail('bob') }, { accessToken: again.session.access_token }),
    ).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
    // Ana's device cannot be used to sign in as the owner, nor the owner's key as Ana.
    await expect(login(client, owner.email, ana.key)).rejects.toMatchObject({ code: 'E_FORBIDDEN' });

    await client.call('hosts.enroll_token', { name: 'ana-mini' }, { accessToken: again.session.access_token });
    const audit = await client.call('audit.list', {}, { accessToken: owner.session.access_token });
    const byAction = (action: string) => audit.entries.find((entry) => entry.action === action);
    expect(byAction('enroll_token.created')?.by).toBe(anaEmail);
    expect(byAction('member.invited')?.by).toBe(owner.email);
    expect(byAction('member.joined')?.by).toBe(anaEmail);
    expect(byAction('billing.subscription')?.by).toBeNull(); // Stripe's webhook
  });

  it('an invitation for an email that already has an account is refused', async () => {
    const owner = await signup(client);
    await upgrade(client, owner, billing.standIn, 'team');
    const other = await signup(client);
    await expect(
      client.call('account.invite', { email: other.email }, { accessToken: owner.session.access_token }),
    ).rejects.toMatchObject({ code: 'E_EXISTS' });
  });

  it('an invitation made on Team lets nobody in once the account has left Team', async () => {
    const owner = await signup(client);
    const { subscription } = await upgrade(client, owner, billing.standIn, 'team');
    const anaEmail = uniqueEmail('ana');
    const invite = await client.call(
      'account.invite',
      { email: anaEmail },
      { accessToken: owner.session.access_token },
    );
    const cancelled = billing.standIn.updateSubscription(
      subscription.id,
      { status: 'canceled', ended_at: Math.floor(billing.clock.now() / 1000) },
      'customer.subscription.deleted',
    );
    expect((await billing.standIn.deliver(cancelled)).status).toBe(200);
    await expect(accept(invite.invite_token, anaEmail)).rejects.toMatchObject({
      code: 'E_PLAN_LIMIT',
      message: expect.stringMatching(/Team plan/),
    });
    const members = await client.call('account.members', {}, { accessToken: owner.session.access_token });
    expect(members.members.map((m) => [m.email, m.status])).toEqual([
      [owner.email, 'active'],
      [anaEmail, 'invited'],
    ]);
  });
  it('an invitee refused because 16 computers already wait is told to ask the owner, and the invitation still works after', async () => {
    const owner = await signup(client);
    await upgrade(client, owner, billing.standIn, 'team');
    const anaEmail = uniqueEmail('ana');
    const invite = await client.call(
      'account.invite',
      { email: anaEmail },
      { accessToken: owner.session.access_token },
    );
    const waiting = [];
    for (let i = 0; i < 16; i++) waiting.push(await login(client, owner.email, newKey(), `new-${i}`));
    // The invitee has no computer the account trusts: the refusal sends them to the owner.
    await expect(accept(invite.invite_token, anaEmail)).rejects.toMatchObject({
      code: 'E_FORBIDDEN',
      message: expect.stringMatching(
        /16 computers waiting for approval.*ask the account's owner.*accept the invitation again/,
      ),
    });
    // The owner makes room; the same invitation lets her in.
    await revoke(client, owner, waiting[0]!, 'new-0');
    const ana = await accept(invite.invite_token, anaEmail);
    expect(ana.session.device.status).toBe('pending');
  });
});
