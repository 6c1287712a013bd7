import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  approvalTag,
  makeHostStatement,
  verifyHostStatement,
  deviceFingerprint,
  newApprovalCode,
  openApprovalBundle,
  sealApprovalBundle,
  tagMatches,
  toHex,
  type ApprovalBundleFields,
} from '@hangar/shared';

const key = () => toHex(crypto.getRandomValues(new Uint8Array(32)));
const cert = () => toHex(crypto.getRandomValues(new Uint8Array(32)));

function fields(deviceKey: string): ApprovalBundleFields {
  const approver = key();
  return {
    account_id: 'acc_1',
    approver_device_key: approver,
    device_key: deviceKey,
    issued_at: 1_700_000_000_000,
    devices: [approver, key()],
    hosts: [{ name: 'mini', host_key: key(), cert_fingerprint: cert() }],
  };
}

describe('the approval code, its tag and the sealed bundle', () => {
  it('a code looks like a fingerprint (8 groups of 4 base32) and is typed back in any case, with or without dashes', () => {
    const code = newApprovalCode();
    expect(code).toMatch(/^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$/);
    expect(deviceFingerprint(key())).toMatch(/^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$/);
    const device = key();
    const tag = approvalTag(code, device, 'acc_1');
    expect(tagMatches(code.toLowerCase().replace(/-/g, ' '), device, 'acc_1', tag)).toBe(true);
  });

  it('a tag matches only its own code, device key and account: a relay that swapped the key cannot make one', () => {
    const code = newApprovalCode();
    const device = key();
    const tag = approvalTag(code, device, 'acc_1');
    expect(tagMatches(code, key(), 'acc_1', tag)).toBe(false);
    expect(tagMatches(code, device, 'acc_2', tag)).toBe(false);
    expect(tagMatches(newApprovalCode(), device, 'acc_1', tag)).toBe(false);
  });

  it('a code that is not one (wrong length, letters outside base32) is refused with what to type', () => {
    expect(() => approvalTag('ABCD-EFGH', key(), 'acc_1')).toThrow(/not an approval code/);
    expect(() => approvalTag('0000-1111-8888-9999-AAAA-BBBB-CCCC-DDDD', key(), 'acc_1')).toThrow(
      /not an approval code/,
    );
  });

  it('a bundle opens with its code for its device; any other code, device or changed field is refused', () => {
    const code = newApprovalCode();
    const device = key();
    const sealed = sealApprovalBundle(code, fields(device));
    expect(openApprovalBundle(code, sealed, { deviceKey: device, accountId: 'acc_1' })).toMatchObject({
      device_key: device,
      hosts: sealed.hosts,
    });
    const refused = /not sealed with this computer's approval code/;
    expect(() => openApprovalBundle(newApprovalCode(), sealed, { deviceKey: device, accountId: 'acc_1' })).toThrow(
      refused,
    );
    expect(() => openApprovalBundle(code, sealed, { deviceKey: key(), accountId: 'acc_1' })).toThrow(refused);
    expect(() => openApprovalBundle(code, sealed, { deviceKey: device, accountId: 'acc_2' })).toThrow(refused);
    fc.assert(
      fc.property(fc.constantFrom('host_key', 'cert_fingerprint', 'approver', 'device', 'name'), (what) => {
        const host = sealed.hosts[0]!;
        const changed =
          what === 'approver'
            ? { ...sealed, approver_device_key: key() }
            : what === 'device'
              ? { ...sealed, devices: [...sealed.devices, key()] }
              : { ...sealed, hosts: [{ ...host, [what]: what === 'name' ? 'evil' : key() }] };
        expect(() => openApprovalBundle(code, changed, { deviceKey: device, accountId: 'acc_1' })).toThrow(refused);
      }),
    );
  });
});

describe('host statements', () => {
  it('a statement that a host has a key verifies with its signer, and not once any field changed', () => {
    const secret = ed25519.utils.randomSecretKey();
    const signer = { publicKey: ed25519.getPublicKey(secret), sign: (m: Uint8Array) => ed25519.sign(m, secret) };
    const statement = makeHostStatement(signer, {
      kind: 'host',
      account_id: 'acc_1',
      host_key: key(),
      cert_fingerprint: cert(),
      name: 'vps',
      issued_at: 1_700_000_000_000,
    });
    expect(verifyHostStatement(statement)).toBe(true);
    expect(verifyHostStatement({ ...statement, host_key: key() })).toBe(false);
    expect(verifyHostStatement({ ...statement, cert_fingerprint: cert() })).toBe(false);
    expect(verifyHostStatement({ ...statement, name: 'mini' })).toBe(false);
    expect(verifyHostStatement({ ...statement, account_id: 'acc_2' })).toBe(false);
    expect(verifyHostStatement({ ...statement, signer_device_key: key() })).toBe(false);
  });
});
