import WebSocket from 'ws';
import { expect, it } from 'vitest';
import { RELAY_PROCEDURES, type RelayToDevice } from '@hangar/shared';
import {
  agentSocket,
  deviceSocket,
  describeEachStorage,
  enroll,
  login,
  newHost,
  ownerWithHost,
  post,
  waitFor,
  endorse,
  revoke,
  type SignedIn,
} from './support/relay-fixture.js';
import { spliceUpgrade } from './support/splice-upgrade.js';

/** A device socket by hand, keeping every message but heartbeats, in order. */
function rawDeviceSocket(url: string, user: SignedIn) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/device`);
  const messages: RelayToDevice[] = [];
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as RelayToDevice;
    if (message.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
    else if (message.type !== 'pong') messages.push(message);
  });
  socket.on('open', () => socket.send(JSON.stringify({ type: 'auth', access_token: user.session.access_token })));
  return { socket, messages, send: (message: unknown) => socket.send(JSON.stringify(message)) };
}

describeEachStorage('a pending device', (relay) => {
  it('sees only its own pending state, nothing of the hosts, devices or billing, until a trusted device approves it', async () => {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    const ownerSocket = deviceSocket(relay.url, owner);
    // Someone with the password only: signs in on a new key, which joins the account as pending.
    const phone = await login(relay.client, owner.email, undefined, 'phone');
    expect(phone.session.device.status).toBe('pending');
    const phoneSocket = rawDeviceSocket(relay.url, phone);
    let signalsAtHost = 0;
    agent.onSignal(() => signalsAtHost++);
    try {
      await waitFor('host online at the owner', () => ownerSocket.hosts.get(hostId)?.online);
      await waitFor('phone socket ready', () => phoneSocket.messages.some((m) => m.type === 'ready'));

      // Every procedure for trusted devices refuses it, saying what to do; the table decides.
      const trustedOnly = Object.entries(RELAY_PROCEDURES).filter(([, spec]) => spec.auth === 'device');
      expect(trustedOnly.map(([method]) => method)).toEqual(
        expect.arrayContaining([
          'hosts.list',
          'hosts.enroll_token',
          'statements.list',
          'billing.status',
          'turn.credentials',
        ]),
      );
      for (const [method] of trustedOnly) {
        const response = await post(relay.url, method, {}, phone.session.access_token);
        expect({ method, status: response.status, code: response.body['error']?.code }).toEqual({
          method,
          status: 403,
          code: 'E_FORBIDDEN',
        });
        expect(response.body['error'].message).toContain('hangar devices approve "phone"');
      }
      // Its own entry only: enough to show its fingerprint and learn it was approved.
      const mine = await relay.client.call('devices.list', {}, { accessToken: phone.session.access_token });
      expect(mine.devices.map((d) => [d.name, d.status])).toEqual([['phone', 'pending']]);
      expect(mine.this_device).toBe(phone.session.device.device_id);
      // No relayed link either.
      const splice = await spliceUpgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${phone.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(splice.status).toBe(403);

      // News of the account meanwhile (a new host, another device asking to join) reaches the owner only.
      const pendingSeen: string[] = [];
      ownerSocket.socket.onDevicePending((device) => pendingSeen.push(device.name));
      const second = await enroll(relay.client, owner, newHost('second'));
      await login(relay.client, owner.email, undefined, 'tablet');
      await waitFor(
        'the owner hears of both',
        () => ownerSocket.hosts.has(second.hostId) && pendingSeen.includes('tablet'),
      );
      // A signal is answered on the same socket after anything sent to it before: a sync point.
      phoneSocket.send({
        type: 'signal',
        to_host: hostId,
        request_id: 'req-pending-1',
        payload: 'offer',
        signature: '0'.repeat(128),
      });
      const refused = await waitFor('signal refused', () =>
        phoneSocket.messages.find((m) => m.type === 'signal.error'),
      );
      expect(refused.type === 'signal.error' && refused.error.code).toBe('E_FORBIDDEN');
      expect(phoneSocket.messages.map((m) => m.type)).toEqual(['ready', 'signal.error']);
      expect(signalsAtHost).toBe(0);

      // Approved by the owner: the same socket hears so, then gets the account's hosts.
      await endorse(relay.client, owner, phone, 'phone');
      await waitFor('both hosts at the phone', () =>
        [hostId, second.hostId].every((id) =>
          phoneSocket.messages.some((m) => m.type === 'presence' && m.host.host_id === id),
        ),
      );
      const types = phoneSocket.messages.map((m) => m.type);
      expect(types.slice(0, 3)).toEqual(['ready', 'signal.error', 'device.changed']);
      const hosts = await relay.client.call('hosts.list', {}, { accessToken: phone.session.access_token });
      expect(hosts.hosts.map((h) => h.name).sort()).toEqual(['mini', 'second']);
      const all = await relay.client.call('devices.list', {}, { accessToken: phone.session.access_token });
      expect(all.devices.map((d) => d.name).sort()).toEqual(['laptop', 'phone', 'tablet']);
    } finally {
      phoneSocket.socket.terminate();
      ownerSocket.socket.dispose();
      agent.dispose();
    }
  });

  it('a device pending again (its approver revoked) is treated so on the socket it has open: no signals, no news of hosts', async () => {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    const tablet = await login(relay.client, owner.email, undefined, 'tablet');
    const phone = await login(relay.client, owner.email, undefined, 'phone');
    await endorse(relay.client, owner, tablet, 'tablet');
    await endorse(relay.client, tablet, phone, 'phone');
    const phoneSocket = rawDeviceSocket(relay.url, phone);
    const ownerSocket = deviceSocket(relay.url, owner);
    const disposables: (() => void)[] = [];
    try {
      await waitFor('the phone trusted, with the host', () =>
        phoneSocket.messages.some((m) => m.type === 'presence' && m.host.host_id === hostId),
      );
      await revoke(relay.client, owner, tablet, 'tablet');
      await waitFor('the phone hears it waits again', () =>
        phoneSocket.messages.some(
          (m) =>
            m.type === 'device.changed' &&
            m.device.device_id === phone.session.device.device_id &&
            m.device.status === 'pending',
        ),
      );
      const before = phoneSocket.messages.length;
      // A host comes online meanwhile: the owner hears of it; the phone, waiting again, does not.
      const secondHost = newHost('second');
      const second = await enroll(relay.client, owner, secondHost);
      const secondAgent = agentSocket(relay.url, second.hostId, secondHost);
      disposables.push(() => secondAgent.dispose());
      await waitFor('the second host online at the owner', () => ownerSocket.hosts.get(second.hostId)?.online);
      phoneSocket.send({
        type: 'signal',
        to_host: hostId,
        request_id: 'req-demoted-1',
        payload: 'offer',
        signature: '0'.repeat(128),
      });
      const refused = await waitFor('signal refused', () =>
        phoneSocket.messages.find((m) => m.type === 'signal.error'),
      );
      expect(refused.type === 'signal.error' && refused.error.code).toBe('E_FORBIDDEN');
      // Nothing of the new host reached it (its presence went out before that answer).
      expect(
        phoneSocket.messages.slice(before).some((m) => m.type === 'presence' && m.host.host_id === second.hostId),
      ).toBe(false);
    } finally {
      for (const dispose of disposables) dispose();
      phoneSocket.socket.terminate();
      ownerSocket.socket.dispose();
      agent.dispose();
    }
  });
});
