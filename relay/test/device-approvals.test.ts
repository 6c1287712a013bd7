import { expect, it } from 'vitest';
import {
  approvalTag,
  makeLoginProof,
  makeStatement,
  newApprovalCode,
  openApprovalBundle,
  sealApprovalBundle,
} from '@hangar/shared';
import {
  PASSWORD,
  describeEachStorage,
  endorse,
  enroll,
  login,
  newKey,
  post,
  revoke,
  signup,
  statementOf,
  uniqueEmail,
} from './support/relay-fixture.js';

describeEachStorage('an approval code through the relay', (relay) => {
  it('carries a pending device’s tag to the approver and the sealed bundle back to that device only', async () => {
    const owner = await signup(relay.client);
    const accountId = owner.session.account.account_id;
    const phoneKey = newKey();
    const phone = await login(relay.client, owner.email, phoneKey, 'phone');
    const code = newApprovalCode();
    const tag = approvalTag(code, phoneKey.publicKey, accountId);
    const offered = await post(relay.url, 'devices.offer_tag', { tag }, phone.session.access_token);
    expect(offered.status).toBe(200);
    // Only a pending device offers a tag, for itself.
    const trusted = await post(relay.url, 'devices.offer_tag', { tag }, owner.session.access_token);
    expect(trusted.body['error']?.code).toBe('E_BAD_REQUEST');

    const phoneId = phone.session.device.device_id;
    const held = await post(relay.url, 'devices.tag', { device_id: phoneId }, owner.session.access_token);
    expect(held.body).toEqual({ public_key: phoneKey.publicKey, tag });

    const fields = {
      account_id: accountId,
      approver_device_key: owner.key.publicKey,
      device_key: phoneKey.publicKey,
      issued_at: Date.now(),
      devices: [owner.key.publicKey],
      hosts: [],
    };
    // A bundle for another key than the endorsed device's is refused, and nothing is endorsed.
    const other = sealApprovalBundle(code, { ...fields, device_key: newKey().publicKey });
    const refused = await post(
      relay.url,
      'devices.endorse',
      { device_id: phoneId, statement: statementOf(owner, 'endorse', phoneKey, 'phone'), bundle: other },
      owner.session.access_token,
    );
    expect(refused.body['error']?.code).toBe('E_BAD_REQUEST');
    // A statement about another key, with a bundle to match it: the statement is refused, and the
    // bundle is not kept for the phone either.
    const stranger = newKey();
    const misfiled = await post(
      relay.url,
      'devices.endorse',
      {
        device_id: phoneId,
        statement: statementOf(owner, 'endorse', stranger, 'phone'),
        bundle: sealApprovalBundle(code, { ...fields, device_key: stranger.publicKey }),
      },
      owner.session.access_token,
    );
    expect(misfiled.body['error']?.code).toBe('E_BAD_REQUEST');
    const none = await post(relay.url, 'devices.bundle', {}, phone.session.access_token);
    expect(none.body).toEqual({ bundle: null });

    const bundle = sealApprovalBundle(code, fields);
    const endorsed = await post(
      relay.url,
      'devices.endorse',
      { device_id: phoneId, statement: statementOf(owner, 'endorse', phoneKey, 'phone'), bundle },
      owner.session.access_token,
    );
    expect(endorsed.status, JSON.stringify(endorsed.body)).toBe(200);
    const handed = await post(relay.url, 'devices.bundle', {}, phone.session.access_token);
    expect(openApprovalBundle(code, handed.body['bundle'], { deviceKey: phoneKey.publicKey, accountId })).toEqual(
      fields,
    );
    // The owner's own call gets none: the bundle is the phone's.
    expect((await post(relay.url, 'devices.bundle', {}, owner.session.access_token)).body).toEqual({ bundle: null });
  });
});

describeEachStorage('a computer vouching back for its approver', (relay) => {
  it('is stored as a statement, and the approver keeps its status and who approved it', async () => {
    const owner = await signup(relay.client);
    const phone = await login(relay.client, owner.email, newKey(), 'phone');
    const phoneId = phone.session.device.device_id;
    const ownerId = owner.session.device.device_id;
    const approve = await endorse(relay.client, owner, phone, 'phone');
    const back = await endorse(relay.client, phone, owner, 'laptop');
    expect(back.seq).toBe(approve.seq + 1);
    const listed = await post(relay.url, 'devices.list', {}, owner.session.access_token);
    const devices = listed.body['devices'] as { device_id: string; status: string; endorsed_by: string | null }[];
    expect(devices.find((d) => d.device_id === ownerId)).toMatchObject({ status: 'first', endorsed_by: null });
    expect(devices.find((d) => d.device_id === phoneId)).toMatchObject({
      status: 'endorsed',
      endorsed_by: owner.key.publicKey,
    });
  });
});

describeEachStorage('trust through a revoked device', (relay) => {
  it('what only a revoked device vouched for is listed as needing approval again, may not call what a trusted one may, and comes back with its approver', async () => {
    const owner = await signup(relay.client);
    const a = await login(relay.client, owner.email, newKey(), 'tablet');
    const b = await login(relay.client, owner.email, newKey(), 'phone');
    const c = await login(relay.client, owner.email, newKey(), 'watch');
    const id = (d: typeof a) => d.session.device.device_id;
    await endorse(relay.client, owner, a, 'tablet');
    await endorse(relay.client, a, b, 'phone'); // the owner → tablet → phone → watch
    await endorse(relay.client, b, c, 'watch');
    const listed = async () => {
      const answer = await post(relay.url, 'devices.list', {}, owner.session.access_token);
      return answer.body['devices'] as { device_id: string; status: string; needs_approval_again?: string }[];
    };
    const of = async (d: typeof a) => (await listed()).find((row) => row.device_id === id(d))!;
    expect((await of(c)).status).toBe('endorsed');
    expect((await post(relay.url, 'hosts.list', {}, c.session.access_token)).status).toBe(200);

    await revoke(relay.client, owner, a, 'tablet');
    // As on every host: the phone and the watch were vouched for through the tablet only.
    for (const [device, name, by] of [
      [b, 'phone', 'tablet (revoked)'],
      [c, 'watch', 'phone (itself waiting for approval)'],
    ] as const) {
      const row = await of(device);
      expect(row.status).toBe('pending');
      expect(row.needs_approval_again).toContain(`approved before by ${by}`);
      expect(row.needs_approval_again).toContain(`hangar devices approve ${name} --yes`);
      const refused = await post(relay.url, 'hosts.list', {}, device.session.access_token);
      expect(refused.body['error']?.code).toBe('E_FORBIDDEN');
    }
    // The watch sees the same about itself.
    const own = await post(relay.url, 'devices.list', {}, c.session.access_token);
    expect((own.body['devices'] as { needs_approval_again?: string }[])[0]?.needs_approval_again).toContain(
      'hosts refuse it',
    );
    expect((await of(owner)).needs_approval_again).toBeUndefined();

    // The owner approves the phone again: its approval of the watch stands, and nothing revoked the watch.
    await endorse(relay.client, owner, b, 'phone');
    expect(await of(b)).toMatchObject({ status: 'endorsed' });
    const watch = await of(c);
    expect(watch).toMatchObject({ status: 'endorsed' });
    expect(watch.needs_approval_again).toBeUndefined();
    expect((await post(relay.url, 'hosts.list', {}, c.session.access_token)).status).toBe(200);
  });
});

describeEachStorage('the account’s first computer revoked by another', (relay) => {
  it('the computer that revoked it takes its place on the relay; what only the first vouched for waits again', async () => {
    const owner = await signup(relay.client);
    const tablet = await login(relay.client, owner.email, newKey(), 'tablet');
    const phone = await login(relay.client, owner.email, newKey(), 'phone');
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, owner, phone, 'phone');
    // The laptop was stolen: the tablet revokes it.
    await revoke(relay.client, tablet, owner, 'laptop');
    const listed = await post(relay.url, 'devices.list', {}, tablet.session.access_token);
    const devices = listed.body['devices'] as { name: string; status: string; needs_approval_again?: string }[];
    expect(devices.map((d) => [d.name, d.status])).toEqual([
      ['laptop', 'revoked'],
      ['tablet', 'first'],
      ['phone', 'pending'],
    ]);
    expect(devices.find((d) => d.name === 'phone')?.needs_approval_again).toContain(
      'hangar devices approve phone --yes',
    );
    // The tablet may still approve and enroll: the account is not left with nobody to do so.
    expect((await post(relay.url, 'hosts.enroll_token', { name: 'mini' }, tablet.session.access_token)).status).toBe(
      200,
    );
  });
});

describeEachStorage('the root passes to a revoker only when nobody else is trusted', (relay) => {
  type Device = Awaited<ReturnType<typeof signup>>;
  /** A person invited into the owner's account, signed in on her laptop (pending). */
  const member = async (owner: Device): Promise<Device> => {
    const email = uniqueEmail('ana');
    const invite = await relay.client.call('account.invite', { email }, { accessToken: owner.session.access_token });
    const key = newKey();
    const session = await relay.client.call('account.accept_invite', {
      invite_token: invite.invite_token,
      email,
      password: PASSWORD,
      device: { public_key: key.publicKey, name: 'ana-laptop' },
      proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: email }),
    });
    return { key, session, email };
  };
  const statuses = async (asking: Device) => {
    const listed = await post(relay.url, 'devices.list', {}, asking.session.access_token);
    return (listed.body['devices'] as { name: string; status: string }[]).map((d) => [d.name, d.status]);
  };

  it('a device that revokes its own approver while the first computer stands waits again; it does not become a root', async () => {
    const owner = await signup(relay.client);
    const tablet = await login(relay.client, owner.email, newKey(), 'tablet');
    const phone = await login(relay.client, owner.email, newKey(), 'phone');
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, tablet, phone, 'phone'); // laptop → tablet → phone
    await revoke(relay.client, phone, tablet, 'tablet');
    // As on every host: the phone was vouched for through the tablet only. Were it `first`, a later
    // revocation up its old chain would never reach it, and it would approve and enroll on its own.
    expect(await statuses(owner)).toEqual([
      ['laptop', 'first'],
      ['tablet', 'revoked'],
      ['phone', 'pending'],
    ]);
    const refused = await post(relay.url, 'hosts.enroll_token', { name: 'mini' }, phone.session.access_token);
    expect(refused.body['error']?.code).toBe('E_FORBIDDEN');
  });

  it("a member's device that revokes the owner's first computer does not become the account's root", async () => {
    const owner = await signup(relay.client);
    const ana = await member(owner);
    await endorse(relay.client, owner, ana, 'ana-laptop');
    await revoke(relay.client, ana, owner, 'laptop');
    // Nobody is left trusted, but the root is the owner's to pass on, not another person's to take.
    expect(await statuses(ana)).toEqual([['ana-laptop', 'pending']]);
    const refused = await post(relay.url, 'hosts.enroll_token', { name: 'mini' }, ana.session.access_token);
    expect(refused.body['error']?.code).toBe('E_FORBIDDEN');
  });

  it("the owner's computer that revokes the owner's stolen first computer takes its place though a member's computer is still trusted", async () => {
    const owner = await signup(relay.client);
    const tablet = await login(relay.client, owner.email, newKey(), 'tablet');
    const ana = await member(owner);
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, owner, ana, 'ana-laptop');
    await enroll(relay.client, ana); // ana's laptop is a root of her host
    await revoke(relay.client, tablet, owner, 'laptop');
    // The owner is not left waiting on another person to approve their own computer again.
    expect(await statuses(tablet)).toEqual([
      ['laptop', 'revoked'],
      ['tablet', 'first'],
      ['ana-laptop', 'endorsed'],
    ]);
  });

  it('a stolen laptop that revokes the first computer while the owner keeps a computer that enrolled a host does not take over', async () => {
    const owner = await signup(relay.client);
    const desktop = await login(relay.client, owner.email, newKey(), 'desktop');
    const stolen = await login(relay.client, owner.email, newKey(), 'stolen');
    await endorse(relay.client, owner, desktop, 'desktop');
    await endorse(relay.client, owner, stolen, 'stolen');
    await enroll(relay.client, desktop); // the desktop is a root of that host (its first link)
    await revoke(relay.client, stolen, owner, 'laptop');
    expect(await statuses(desktop)).toEqual([
      ['laptop', 'revoked'],
      ['desktop', 'endorsed'],
      ['stolen', 'pending'],
    ]);
    // The stolen laptop may approve, enroll or revoke nothing now; the owner's desktop still may.
    const refused = await post(relay.url, 'hosts.enroll_token', { name: 'mini' }, stolen.session.access_token);
    expect(refused.body['error']?.code).toBe('E_FORBIDDEN');
    await revoke(relay.client, desktop, stolen, 'stolen');
  });
});

describeEachStorage('a statement said again', (relay) => {
  it('the same signer endorsing or revoking the same device again (another issued_at) is stored once', async () => {
    const owner = await signup(relay.client);
    const tablet = await login(relay.client, owner.email, newKey(), 'tablet');
    const phone = await login(relay.client, owner.email, newKey(), 'phone');
    const say = async (kind: 'endorse' | 'revoke', subject: typeof owner, name: string, issuedAt: number) => {
      const signed = makeStatement(owner.key.signer, {
        kind,
        account_id: owner.session.account.account_id,
        subject_device_key: subject.key.publicKey,
        subject_name: name,
        issued_at: issuedAt,
      });
      const done = await post(
        relay.url,
        `devices.${kind}`,
        { device_id: subject.session.device.device_id, statement: signed },
        owner.session.access_token,
      );
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      return done.body['seq'] as number;
    };
    const now = Date.now();
    const first = await say('endorse', tablet, 'tablet', now - 2000);
    expect(await say('endorse', tablet, 'tablet', now - 1000)).toBe(first);
    expect(await say('endorse', tablet, 'tablet', now)).toBe(first);
    await say('endorse', phone, 'phone', now);
    const revoked = await say('revoke', phone, 'phone', now - 1000);
    expect(await say('revoke', phone, 'phone', now)).toBe(revoked);
    const listed = await post(relay.url, 'statements.list', { since: 0 }, owner.session.access_token);
    expect(
      (listed.body['statements'] as { kind: string; subject_name: string }[]).map((s) => [s.kind, s.subject_name]),
    ).toEqual([
      ['endorse', 'tablet'],
      ['endorse', 'phone'],
      ['revoke', 'phone'],
    ]);
  });
});
