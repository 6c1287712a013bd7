import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { SpliceRequest } from '@hangar/shared';
import { agentSocket, post, useTestRelay, waitFor, ownerWithHost } from './support/relay-fixture.js';
import { spliceUpgrade as upgrade, type SpliceUpgraded as Upgraded } from './support/splice-upgrade.js';
import { readBytes } from '../../test/support/socket-bytes.js';

/**
 * The relay's splice route (PROTOCOL.md "Relayed links") at its HTTP surface: a device's upgrade,
 * the agent asked on its socket, the agent's upgrade, and bytes copied unchanged both ways; the
 * checks before the agent is asked; the waiting and idle limits.
 */

describe('splices', () => {
  const relay = useTestRelay('sqlite', { splice: { joinTimeoutMs: 500, idleMs: 1000 } });

  async function hostOnline() {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    await waitFor('the agent online', () => agent.isWelcomed);
    return { owner, hostId, agent };
  }

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
