import { describe, expect, it } from 'vitest';
import {
  enrollParams,
  login,
  newHost,
  newKey,
  post,
  signup,
  statementOf,
  useTestRelay,
} from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';

/**
 * What an adversarial review of the relay's open surface found, one test each: what a user of an
 * account of their own (or a device the account shut out) could do that they should not.
 */
describe('security review', () => {
  const relay = useTestRelay('sqlite');

  it('an enrollment token made by a computer that was then revoked enrolls nothing: the revocation ends what it made', async () => {
    const owner = await signup(relay.client);
    const phoneKey = newKey();
    const phone = await login(relay.client, owner.email, phoneKey, 'phone');
    const phoneId = phone.session.device.device_id;
    const endorsed = await post(
      relay.url,
      'devices.endorse',
      { device_id: phoneId, statement: statementOf(owner, 'endorse', phoneKey, 'phone') },
      owner.session.access_token,
    );
    expect(endorsed.status, JSON.stringify(endorsed.body)).toBe(200);
    // The phone, trusted for now, prints an enrollment line; then the owner shuts it out.
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      {
        accessToken: phone.session.access_token,
      },
    );
    const revoked = await post(
      relay.url,
      'devices.revoke',
      { device_id: phoneId, statement: statementOf(owner, 'revoke', phoneKey, 'phone') },
      owner.session.access_token,
    );
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);

    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, newHost('mini'))),
    );
    expect(error.code).toBe('E_TOKEN_INVALID');
    expect(error.message).toMatch(/revoked/);
    expect(error.message).toMatch(/hangar hosts enroll-token/);
    const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    expect(listed.hosts).toEqual([]);
  });
});
