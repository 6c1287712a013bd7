import { describe, expect, it } from 'vitest';
import { SIGNAL_TIMEOUT_MS, verifySignal, type AgentSignal } from '@hangar/shared';
import {
  agentSocket,
  deviceSocket,
  enroll,
  signup,
  waitFor,
  hostAndDevice,
  askHost,
  describeEachStorage,
} from './support/relay-fixture.js';

describeEachStorage('signaling', (relay) => {
  it('a device asks a host, gets the signed answer, and trickled messages follow on the same request', async () => {
    const { owner, host, hostId, agent, device } = await hostAndDevice(relay);
    const atHost: AgentSignal[] = [];
    agent.onSignal((signal) => {
      atHost.push(signal);
      // The host checks the device's signature against the key it pinned, then answers.
      if (signal.payload === '{"offer":"sdp"}') {
        agent.sendSignal({
          toDevice: signal.from_device.device_id,
          recipientKey: owner.key.publicKey,
          requestId: signal.request_id,
          payload: '{"answer":"sdp"}',
        });
      }
    });
    try {
      await waitFor('both sockets up', () => agent.isWelcomed && device.socket.isReady);
      const answer = await askHost(device, { hostId, host }, 'req-00000001', '{"offer":"sdp"}');
      expect(answer.payload).toBe('{"answer":"sdp"}');
      expect(answer.from_host).toEqual({ host_id: hostId, public_key: host.publicKey });
      expect(
        verifySignal({
          senderKey: host.publicKey,
          recipientKey: owner.key.publicKey,
          requestId: answer.request_id,
          payload: answer.payload,
          signature: answer.signature,
        }),
      ).toBe(true);
      const offer = atHost[0]!;
      expect(
        verifySignal({
          senderKey: owner.key.publicKey,
          recipientKey: host.publicKey,
          requestId: offer.request_id,
          payload: offer.payload,
          signature: offer.signature,
        }),
      ).toBe(true);

      // Trickled candidates both ways on the same request id.
      const trickledAtDevice: string[] = [];
      device.socket.onSignal((s) => s.request_id === 'req-00000001' && trickledAtDevice.push(s.payload));
      for (const candidate of ['c1', 'c2', 'c3']) {
        device.socket.sendSignal({
          toHost: hostId,
          recipientKey: host.publicKey,
          requestId: 'req-00000001',
          payload: candidate,
        });
        agent.sendSignal({
          toDevice: owner.session.device.device_id,
          recipientKey: owner.key.publicKey,
          requestId: 'req-00000001',
          payload: `h${candidate}`,
        });
      }
      await waitFor('trickle at the host', () => atHost.length === 4);
      await waitFor('trickle at the device', () => trickledAtDevice.length === 3);
      expect(atHost.slice(1).map((s) => s.payload)).toEqual(['c1', 'c2', 'c3']);
      expect(trickledAtDevice).toEqual(['hc1', 'hc2', 'hc3']);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });

  it('a host that never answers gives the device E_TIMEOUT after 10 s', async () => {
    const { host, hostId, agent, device } = await hostAndDevice(relay);
    try {
      await waitFor('both sockets up', () => agent.isWelcomed && device.socket.isReady);
      const sentAt = Date.now();
      const error = await device.socket
        .request({ toHost: hostId, recipientKey: host.publicKey, requestId: 'req-silent-1', payload: 'offer' })
        .then(
          () => undefined,
          (e: unknown) => e as { code: string },
        );
      expect(error?.code).toBe('E_TIMEOUT');
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(SIGNAL_TIMEOUT_MS - 50);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });

  it('signals to an offline host, or to a host of another account, are refused at once', async () => {
    const owner = await signup(relay.client);
    const stranger = await signup(relay.client);
    const { host, hostId } = await enroll(relay.client, owner);
    const device = deviceSocket(relay.url, owner);
    const other = deviceSocket(relay.url, stranger);
    try {
      await waitFor('sockets up', () => device.socket.isReady && other.socket.isReady);
      await expect(askHost(device, { hostId, host }, 'req-offline1', 'x')).rejects.toMatchObject({
        code: 'E_HOST_OFFLINE',
      });
      const agent = agentSocket(relay.url, hostId, host);
      try {
        await waitFor('agent up', () => agent.isWelcomed);
        await expect(
          other.socket.request({
            toHost: hostId,
            recipientKey: host.publicKey,
            requestId: 'req-stranger',
            payload: 'x',
          }),
        ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      } finally {
        agent.dispose();
      }
    } finally {
      device.socket.dispose();
      other.socket.dispose();
    }
  });
});
