import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { makeLoginProof, type SpliceRequest } from '@hangar/shared';
import {
  PASSWORD,
  agentSocket,
  login,
  newKey,
  uniqueEmail,
  post,
  statementOf,
  useTestRelay,
  waitFor,
  ownerWithHost,
  endorse,
  revoke,
} from './support/relay-fixture.js';
import { spliceUpgrade as upgrade, type SpliceUpgraded as Upgraded } from './support/splice-upgrade.js';
import { readBytes } from '../../test/support/socket-bytes.js';

/**
 * The relay's splice route (PROTOCOL.md "Relayed links") at its HTTP surface: a device's upgrade,
 * the agent asked on its socket, the agent's upgrade, and bytes copied unchanged both ways; the
 * checks before the agent is asked; the waiting and idle limits.
 */

async function hostOnlineAt(relay: { client: Parameters<typeof ownerWithHost>[0]; url: string }) {
  const { owner, host, hostId } = await ownerWithHost(relay.client);
  const agent = agentSocket(relay.url, hostId, host);
  await waitFor('the agent online', () => agent.isWelcomed);
  return { owner, hostId, agent };
}

describe('splices', () => {
  const relay = useTestRelay('sqlite', { splice: { joinTimeoutMs: 500, idleMs: 1000 } });

  const hostOnline = () => hostOnlineAt(relay);

  it('joins the device and the agent it asked, and copies bytes unchanged both ways', async () => {
    const { owner, hostId, agent } = await hostOnline();
    const asked: SpliceRequest[] = [];
    const accepted: Promise<Upgraded>[] = [];
    agent.onSplice((request) => {
      asked.push(request);
      accepted.push(upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id }));
    });
    try {
      const device = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(device.status).toBe(101);
      expect(asked).toEqual([
        {
          type: 'splice',
          splice_id: expect.stringMatching(/^[0-9a-f]{64}$/),
          device_id: owner.session.device.device_id,
        },
      ]);
      const host = await accepted[0]!;
      expect(host.status).toBe(101);
      const deviceSocket = (device as { socket: Socket }).socket;
      const hostSocket = (host as { socket: Socket }).socket;
      const up = randomBytes(300_000);
      const down = randomBytes(200_000);
      const atHost = readBytes(hostSocket, up.length);
      const atDevice = readBytes(deviceSocket, down.length);
      deviceSocket.write(up);
      hostSocket.write(down);
      expect((await atHost).equals(up)).toBe(true);
      expect((await atDevice).equals(down)).toBe(true);

      // The id was single use.
      const again = await upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': asked[0]!.splice_id });
      expect(again.status).toBe(404);

      const closed = new Promise<void>((resolve) => hostSocket.once('close', () => resolve()));
      deviceSocket.destroy();
      await closed;
      const audit = await post(relay.url, 'audit.list', {}, owner.session.access_token);
      const actions = (audit.body['entries'] as { action: string; detail: Record<string, unknown> }[]).map(
        (e) => e.action,
      );
      expect(actions).toEqual(expect.arrayContaining(['splice.requested', 'splice.opened']));
      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      expect(metrics).toMatch(/hangar_relay_spliced_bytes_total\{direction="to_host"\} [1-9]\d{5}/);
      expect(metrics).toMatch(/hangar_relay_splices_total\{outcome="opened"\} [1-9]/);
    } finally {
      agent.dispose();
    }
  });

  it('refuses before asking the agent: no token, a malformed host, an unknown splice id', async () => {
    const { owner, agent } = await hostOnline();
    const asked: SpliceRequest[] = [];
    agent.onSplice((request) => asked.push(request));
    try {
      const anonymous = await upgrade(relay.url, '/v1/splice', { 'hangar-host': `host_${'0'.repeat(32)}` });
      expect(anonymous.status).toBe(401);
      const malformed = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': 'mini',
      });
      expect(malformed.status).toBe(400);
      expect(JSON.parse((malformed as { body: string }).body)).toMatchObject({
        error: { code: 'E_BAD_REQUEST', message: expect.stringMatching(/^Hangar-Host: expected a host id/) },
      });
      const unknown = await upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': 'ab'.repeat(32) });
      expect(unknown.status).toBe(404);
      expect(asked).toEqual([]);
    } finally {
      agent.dispose();
    }
  });

  it('a host that does not join in time: the device is told (504), and an idle splice is closed', async () => {
    const { owner, hostId, agent } = await hostOnline();
    let join = false;
    const accepted: Promise<Upgraded>[] = [];
    agent.onSplice((request) => {
      if (join) accepted.push(upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id }));
    });
    const ask = () =>
      upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': hostId,
      });
    try {
      const late = await ask();
      expect(late.status).toBe(504);
      expect(JSON.parse((late as { body: string }).body)).toMatchObject({ error: { code: 'E_TIMEOUT' } });

      join = true;
      const device = await ask();
      expect(device.status).toBe(101);
      const socket = (device as { socket: Socket }).socket;
      const began = Date.now();
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      // idleMs is 1 s here (60 s by default).
      expect(Date.now() - began).toBeGreaterThanOrEqual(900);
    } finally {
      agent.dispose();
    }
  });
});

describe('splices and the logins they were opened with', () => {
  // Splices idle out after a minute here: whatever closes one in a test is what the test did.
  // `during` runs once in authenticate, after its read of the device and login (a race's gap).
  let during: (() => Promise<unknown>) | undefined;
  const relay = useTestRelay('sqlite', {
    splice: { joinTimeoutMs: 5_000, idleMs: 60_000 },
    afterAuthRead: async () => {
      const run = during;
      during = undefined;
      await run?.();
    },
  });

  it('ending the login it was opened with (logout), or revoking its device, closes a splice at once', async () => {
    const { owner, hostId, agent } = await hostOnlineAt(relay);
    const phone = await login(relay.client, owner.email);
    await endorse(relay.client, owner, phone, 'phone');
    agent.onSplice((request) => void upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id }));
    const spliced = async (accessToken: string) => {
      const device = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${accessToken}`,
        'hangar-host': hostId,
      });
      expect(device.status).toBe(101);
      const socket = (device as { socket: Socket }).socket;
      let closed = false;
      socket.once('close', () => (closed = true));
      socket.resume();
      return { closed: () => closed };
    };
    try {
      const ownerSplice = await spliced(owner.session.access_token);
      const phoneSplice = await spliced(phone.session.access_token);
      await relay.client.call('auth.logout', { refresh_token: owner.session.refresh_token });
      await waitFor('the logged-out splice to close', () => ownerSplice.closed());
      // The phone's splice, another login's, stays.
      expect(phoneSplice.closed()).toBe(false);
      const admin = await login(relay.client, owner.email, owner.key, 'laptop');
      await revoke(relay.client, admin, phone, 'phone');
      await waitFor('the revoked device’s splice to close', () => phoneSplice.closed());
    } finally {
      agent.dispose();
    }
  });

  it('a device that needs approval again (its approver revoked) loses its open splice at once, as a revoked one', async () => {
    const { owner, hostId, agent } = await hostOnlineAt(relay);
    const tablet = await login(relay.client, owner.email, undefined, 'tablet');
    const phone = await login(relay.client, owner.email, undefined, 'phone');
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, tablet, phone, 'phone'); // laptop → tablet → phone
    agent.onSplice((request) => void upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id }));
    try {
      const device = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${phone.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(device.status).toBe(101);
      const socket = (device as { socket: Socket }).socket;
      let closed = false;
      socket.once('close', () => (closed = true));
      socket.resume();
      await revoke(relay.client, owner, tablet, 'tablet');
      // Pending again: no relayed link may start (requireTrusted), and none it holds stays open.
      await waitFor('the splice of the device waiting again to close', () => closed);
    } finally {
      agent.dispose();
    }
  });

  it("a removed member's device loses its open splice at once", async () => {
    const { owner, hostId, agent } = await hostOnlineAt(relay);
    const anaEmail = uniqueEmail('ana');
    const invite = await relay.client.call(
      'account.invite',
      { email: anaEmail },
      { accessToken: owner.session.access_token },
    );
    const key = newKey();
    const ana = {
      key,
      email: anaEmail,
      session: await relay.client.call('account.accept_invite', {
        invite_token: invite.invite_token,
        email: anaEmail,
        password: PASSWORD,
        device: { public_key: key.publicKey, name: 'ana-laptop' },
        proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: anaEmail }),
      }),
    };
    const deviceId = ana.session.device.device_id;
    await endorse(relay.client, owner, ana, 'ana-laptop');
    agent.onSplice((request) => void upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id }));
    try {
      const device = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${ana.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(device.status).toBe(101);
      const socket = (device as { socket: Socket }).socket;
      let closed = false;
      socket.once('close', () => (closed = true));
      socket.resume();
      await relay.client.call(
        'account.remove_member',
        {
          email: anaEmail,
          revocations: [{ device_id: deviceId, statement: statementOf(owner, 'revoke', key, 'ana-laptop') }],
        },
        { accessToken: owner.session.access_token },
      );
      await waitFor("the removed member's splice to close", () => closed);
    } finally {
      agent.dispose();
    }
  });

  it('a splice whose login is ended between its auth read and its registration is closed', async () => {
    const { owner, hostId, agent } = await hostOnlineAt(relay);
    const asked: string[] = [];
    agent.onSplice((request) => {
      asked.push(request.splice_id);
      void upgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id });
    });
    try {
      during = () => relay.client.call('auth.logout', { refresh_token: owner.session.refresh_token });
      const device = await upgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(during).toBeUndefined(); // the logout ran in that gap
      expect(device.status).toBe(401);
      expect(asked).toEqual([]);
    } finally {
      agent.dispose();
    }
  });
});
