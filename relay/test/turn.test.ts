import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { IceConfig } from '@hangar/shared';
import { turnCredentials } from '../src/turn.js';
import { agentSocket, ownerWithHost, startTestRelay, waitFor } from './support/relay-fixture.js';

describe('TURN REST credentials', () => {
  it('username is expiry:id, credential the base64 HMAC-SHA1 of it under the shared secret', () => {
    const now = Date.UTC(2026, 0, 1);
    const ice = turnCredentials(
      { urls: ['turn:turn.example:3478'], secret: 'a-secret-of-some-length', ttlMs: 3_600_000 },
      'dev_1',
      now,
    );
    expect(ice.username).toBe(`${now / 1000 + 3600}:dev_1`);
    expect(ice.expires_at).toBe(now + 3_600_000);
    expect(ice.credential).toBe(createHmac('sha1', 'a-secret-of-some-length').update(ice.username).digest('base64'));
    expect(ice.urls).toEqual(['turn:turn.example:3478']);
  });
});

describe('TURN credentials as the relay hands them out', () => {
  const turn = { urls: ['turn:127.0.0.1:3478'], secret: 'a-secret-of-some-length' };

  it('a device and a host get credentials that last at most 15 minutes (TURN REST cannot revoke them)', async () => {
    await using relay = await startTestRelay({ turn });
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const asked = Date.now();
    const { ice } = await relay.client.call('turn.credentials', {}, { accessToken: owner.session.access_token });
    expect(ice!.expires_at - asked).toBeLessThanOrEqual(15 * 60_000);
    expect(ice!.expires_at - asked).toBeGreaterThan(5 * 60_000);
    expect(ice!.username).toBe(`${Math.floor(ice!.expires_at / 1000)}:${owner.session.device.device_id}`);

    const agent = agentSocket(relay.url, hostId, host);
    try {
      const issued: IceConfig[] = [];
      agent.onIce((given) => issued.push(given));
      const first = await waitFor('the host credentials', () => issued[0]);
      expect(first.expires_at - asked).toBeLessThanOrEqual(15 * 60_000);
      expect(first.expires_at - asked).toBeGreaterThan(5 * 60_000);
      expect(first.username).toBe(`${Math.floor(first.expires_at / 1000)}:${hostId}`);
    } finally {
      agent.dispose();
    }
  });

  it('an online host is handed fresh credentials before the ones it has expire', async () => {
    // A short lifetime (--turn-ttl) so the renewal shows within the test.
    await using relay = await startTestRelay({ turn: { ...turn, ttlMs: 2_000 } });
    const { host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    try {
      const issued: { at: number; ice: IceConfig }[] = [];
      agent.onIce((ice) => issued.push({ at: Date.now(), ice }));
      await waitFor('a renewal', () => issued[1], 10_000);
      expect(issued[1]!.at).toBeLessThan(issued[0]!.ice.expires_at);
      expect(issued[1]!.ice.expires_at).toBeGreaterThan(issued[0]!.ice.expires_at);
    } finally {
      agent.dispose();
    }
  });
});
