import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { HangarError } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { rawPublicKey } from '../../src/identity/device-key.js';
import { saveEnrollment } from '../../../../host-agent/src/relay/relay-store.js';
import { Cleanup, newDeviceKey, startTestAgent, type TestAgent, reconnect } from './fixture.js';
import { refusal } from '../../../../test/support/refusal.js';

/**
 * The first link to an enrolled host (relay/PROTOCOL.md step 4), at the link level: the host
 * holds what `hangar-agent enroll` stored (the token id, the device key d and the secret e), and
 * the device that made the token connects in pair mode with { token_id, secret: e }.
 */

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const DAY = 24 * 60 * 60 * 1000;

function tokenId(): string {
  return `tok_${randomBytes(16).toString('hex')}`;
}

function enrollOn(agent: TestAgent, device: Uint8Array, options: { now?: number; expiresAt?: number } = {}) {
  const enrollment = { token_id: tokenId(), secret: randomBytes(32).toString('hex') };
  const now = options.now ?? Date.now();
  saveEnrollment(
    agent.store,
    {
      relay_url: 'http://127.0.0.1:1',
      host_id: `host_${'a'.repeat(32)}`,
      account_id: `acct_${'b'.repeat(32)}`,
      name: 'mini',
      enrolled_at: now,
    },
    {
      token_id: enrollment.token_id,
      device_key: Buffer.from(device).toString('hex'),
      e2e_secret: enrollment.secret,
      expires_at: options.expiresAt ?? now + 7 * DAY,
    },
  );
  return enrollment;
}

describe('the first link to an enrolled host', () => {
  it('pairs the device that made the token with its secret, and the pins then work in auth mode', async () => {
    const agent = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    const enrollment = enrollOn(agent, rawPublicKey(deviceKey));
    const first = await connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment });
    first.transport.close();
    expect(agent.pairedKeys()).toEqual([Buffer.from(rawPublicKey(deviceKey)).toString('hex')]);

    const again = await reconnect(agent, deviceKey, first);
    again.transport.close();
  });

  it('works once: the same token a second time is refused, naming what to do', async () => {
    const agent = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    const enrollment = enrollOn(agent, rawPublicKey(deviceKey));
    (await connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment })).transport.close();
    const error = await refusal(connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment }));
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(error.message).toContain('hangar hosts enroll-token');
  });

  it('refuses a wrong secret as it refuses everything else, and the right one still works after', async () => {
    const agent = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    const enrollment = enrollOn(agent, rawPublicKey(deviceKey));
    const wrong = { ...enrollment, secret: randomBytes(32).toString('hex') };
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment: wrong }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(error.message).toMatch(/did not accept this device's enrollment token/);
    expect(agent.pairedKeys()).toEqual([]);
    // 256 bits: a wrong guess burns nothing (a relay, which knows token ids, cannot spend one).
    (await connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment })).transport.close();
    expect(agent.pairedKeys()).toHaveLength(1);
  });

  it('refuses another device that holds the right secret: the token pairs the device that made it', async () => {
    const agent = await startTestAgent(cleanup);
    const enrollment = enrollOn(agent, rawPublicKey(newDeviceKey()));
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'other', enrollment }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('refuses a first link after its 7 days', async () => {
    const agent = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    const enrollment = enrollOn(agent, rawPublicKey(deviceKey), { now: Date.now() - 8 * DAY });
    const error = await refusal(connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', enrollment }));
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('fails at a host the token was not enrolled on (where a lying relay could point the device)', async () => {
    const enrolled = await startTestAgent(cleanup);
    const impostor = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    const enrollment = enrollOn(enrolled, rawPublicKey(deviceKey));
    const error = await refusal(
      connectToHost({ address: impostor.address, deviceKey, deviceName: 'laptop', enrollment }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(error.message).toMatch(/pointing this device at another machine/);
    expect(impostor.pairedKeys()).toEqual([]);
  });

  it('checks the enrollment before connecting', async () => {
    const agent = await startTestAgent(cleanup);
    const error = await refusal(
      connectToHost({
        address: agent.address,
        deviceKey: newDeviceKey(),
        deviceName: 'laptop',
        enrollment: { token_id: tokenId(), secret: 'abcd' },
      }),
    );
    expect(error.code).toBe('E_BAD_REQUEST');
    expect(error.message).toContain('enrollment.secret');
  });
});
