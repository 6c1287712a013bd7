import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  UsageKey,
  decideMeteredJob,
  signEntitlement,
  signUsageRecord,
  toHex,
  usageRecordKey,
  verifyEntitlement,
  verifyUsageRecord,
  type Ed25519Signer,
  type EntitlementFields,
} from '@hangar/shared';

function signer(): Ed25519Signer {
  const secret = ed25519.utils.randomSecretKey();
  return { publicKey: ed25519.getPublicKey(secret), sign: (message) => ed25519.sign(message, secret) };
}

const HOST_ID = `host_${'a'.repeat(32)}`;

describe('usage records and entitlements (signed bytes)', () => {
  it('a usage record signature covers every field, and its key names exactly one (host, attempt, minute)', () => {
    const host = signer();
    const other = signer();
    const attempt = fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/);
    fc.assert(
      fc.property(
        attempt,
        fc.integer({ min: 0, max: 10_080 }),
        fc.integer({ min: 0, max: 2 ** 41 }),
        (a, minute, at) => {
          const record = signUsageRecord(host, {
            attempt_id: a,
            job_id: 'j-12345678',
            minute_index: minute,
            started_at: at,
          });
          expect(verifyUsageRecord(record)).toBe(true);
          expect(verifyUsageRecord({ ...record, minute_index: minute + 1 })).toBe(false);
          expect(verifyUsageRecord({ ...record, started_at: at + 1 })).toBe(false);
          expect(verifyUsageRecord({ ...record, job_id: 'j-87654321' })).toBe(false);
          expect(verifyUsageRecord({ ...record, host_key: toHex(other.publicKey) })).toBe(false);
          const key = usageRecordKey(record);
          expect(UsageKey.safeParse(key).success).toBe(true);
          // The job id and start time are not part of the key: the same minute reported twice is one minute.
          expect(usageRecordKey({ ...record })).toBe(key);
          expect(usageRecordKey({ ...record, minute_index: minute + 1 })).not.toBe(key);
          expect(usageRecordKey({ ...record, host_key: toHex(other.publicKey) })).not.toBe(key);
          expect(key.length).toBeLessThanOrEqual(100); // Stripe's identifier limit
        },
      ),
      { numRuns: 50 },
    );
  });

  it('an entitlement verifies only as signed, and "no cap" never reads as a number', () => {
    const relay = signer();
    const relayKey = toHex(relay.publicKey);
    const fields: EntitlementFields = {
      account_id: `acct_${'b'.repeat(32)}`,
      host_id: HOST_ID,
      plan: 'pro',
      metered: true,
      minutes_left: null,
      reason: null,
      minute_ms: 60_000,
      issued_at: 1_000,
      valid_until: 1_000 + 24 * 60 * 60_000,
    };
    const entitlement = signEntitlement(relay, fields);
    expect(verifyEntitlement(relayKey, entitlement)).toBe(true);
    expect(verifyEntitlement(relayKey, { ...entitlement, minutes_left: 0 })).toBe(false);
    expect(verifyEntitlement(relayKey, { ...entitlement, plan: 'team' })).toBe(false);
    expect(verifyEntitlement(relayKey, { ...entitlement, valid_until: entitlement.valid_until + 1 })).toBe(false);
    expect(verifyEntitlement(toHex(signer().publicKey), entitlement)).toBe(false);
    expect(verifyEntitlement(relayKey, { ...entitlement, extra: 1, signature: 'zz' })).toBe(false);

    const now = 2_000;
    expect(decideMeteredJob(entitlement, { relayKey, hostId: HOST_ID, now })).toEqual({
      allowed: true,
      metered: true,
      minutes_left: null,
    });
    const capped = signEntitlement(relay, { ...fields, plan: 'trial', minutes_left: 0, reason: 'minutes_used_up' });
    const refused = decideMeteredJob(capped, { relayKey, hostId: HOST_ID, now });
    expect(refused).toMatchObject({
      allowed: false,
      error: { code: 'E_PLAN_LIMIT', details: { reason: 'minutes_used_up' } },
    });
    expect(decideMeteredJob(undefined, { relayKey, hostId: HOST_ID, now })).toMatchObject({ allowed: false });
  });
});
