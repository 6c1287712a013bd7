import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  approvalTag,
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
