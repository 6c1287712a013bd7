import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLoginProof, oidcIdentity, type RelayClient } from '@hangar/shared';
import { newKey, signup, startTestRelay, uniqueEmail, type TestKey, type TestRelay } from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';
import { startStandInProvider, type StandInProvider } from './support/oidc-provider.js';

function oidcSignIn(client: RelayClient, idToken: string, key: TestKey = newKey(), name = 'laptop') {
  return client.call('auth.oidc', {
    id_token: idToken,
    device: { public_key: key.publicKey, name },
    proof: makeLoginProof(key.signer, { relayOrigin: client.origin, identity: oidcIdentity(idToken) }),
  });
}

describe('sign-in with OpenID Connect (against a stand-in provider serving a real JWKS)', () => {
  let provider: StandInProvider;
  let relay: TestRelay;
  beforeAll(async () => {
    provider = await startStandInProvider();
    relay = await startTestRelay({ oidc: { issuer: provider.issuer, clientId: provider.clientId } });
  });
  afterAll(async () => {
    await relay.stop();
    await provider[Symbol.asyncDispose]();
  });

  it('a verified ID token makes an account on first sign-in and finds it again on the next', async () => {
    const email = uniqueEmail('oidc');
    const info = await relay.client.call('relay.info', {});
    expect(info.oidc).toEqual({ issuer: provider.issuer, client_id: provider.clientId });
    const first = await oidcSignIn(
      relay.client,
      await provider.idToken({ sub: 'user-1', email, email_verified: true }),
    );
    expect(first.account.email).toBe(email);
    expect(first.device.status).toBe('first');
    const again = await oidcSignIn(
      relay.client,
      await provider.idToken({ sub: 'user-1', email, email_verified: true }),
      newKey(),
      'phone',
    );
    expect(again.account.account_id).toBe(first.account.account_id);
    expect(again.device.status).toBe('pending');
  });

  it('an existing password account with the same verified email is linked, not duplicated', async () => {
    const user = await signup(relay.client);
    const linked = await oidcSignIn(
      relay.client,
      await provider.idToken({ sub: 'user-2', email: user.email, email_verified: true }),
      user.key,
    );
    expect(linked.account.account_id).toBe(user.session.account.account_id);
    expect(linked.device.device_id).toBe(user.session.device.device_id);
  });

  it('unverified email, another audience, a forged signature, an expired token, or a proof for another token are refused', async () => {
    const email = uniqueEmail('oidc-bad');
    const unverified = await refusal(
      oidcSignIn(relay.client, await provider.idToken({ sub: 'u3', email, email_verified: false })),
    );
    expect(unverified.code).toBe('E_AUTH_OIDC');
    expect(unverified.message).toMatch(/not verified/);
    const otherAudience = await refusal(
      oidcSignIn(
        relay.client,
        await provider.idToken({ sub: 'u3', email, email_verified: true }, { audience: 'someone-else' }),
      ),
    );
    expect(otherAudience.code).toBe('E_AUTH_OIDC');
    const forged = await refusal(
      oidcSignIn(relay.client, await provider.forgedToken({ sub: 'u3', email, email_verified: true })),
    );
    expect(forged.code).toBe('E_AUTH_OIDC');
    const expired = await refusal(
      oidcSignIn(
        relay.client,
        await provider.idToken({ sub: 'u3', email, email_verified: true }, { expiresIn: '-1m' }),
      ),
    );
    expect(expired.code).toBe('E_AUTH_OIDC');
    // A proof of possession made for one ID token does not carry over to another.
    const key = newKey();
    const token = await provider.idToken({ sub: 'u3', email, email_verified: true });
    const other = await provider.idToken({ sub: 'u3', email, email_verified: true, nonce: 'x' });
    const mismatched = await refusal(
      relay.client.call('auth.oidc', {
        id_token: token,
        device: { public_key: key.publicKey, name: 'laptop' },
        proof: makeLoginProof(key.signer, { relayOrigin: relay.client.origin, identity: oidcIdentity(other) }),
      }),
    );
    expect(mismatched.code).toBe('E_AUTH_BAD_SIGNATURE');
  });

  it('a relay without --oidc-issuer says it has no OIDC sign-in', async () => {
    await using plain = await startTestRelay();
    const error = await refusal(
      oidcSignIn(plain.client, await provider.idToken({ sub: 'u4', email: uniqueEmail(), email_verified: true })),
    );
    expect(error.code).toBe('E_AUTH_OIDC');
    expect(error.message).toMatch(/--oidc-issuer/);
  });
});
