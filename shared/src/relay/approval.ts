import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { HangarError } from '../errors.js';
import { fromHex, lvConcat, toHex } from '../link/handshake.js';
import type { ApprovalBundle } from '../protocol/relay.js';
import { base32Groups, parseBase32Groups } from './fingerprint.js';

/**
 * The approval code (relay/PROTOCOL.md "More devices: the approval code"): a new computer makes a
 * random code (160 bits, shown as 8 groups of 4 base32 like a fingerprint), keeps it, and gives the
 * relay only tag = HMAC(code, its key ‖ account id). The user types the code on a trusted computer,
 * which checks the tag against the key the relay hands it (a relay that swapped the key cannot make
 * the tag: it never saw the code) and seals a bundle for the new computer with a key derived from
 * the code: the hosts and device keys it trusts. So the new computer's first trusted keys come
 * through the user, not through the relay.
 */

const LABELS = {
  tag: 'hangar-relay approval tag v1',
  bundleKey: 'hangar-relay approval bundle key v1',
  bundle: 'hangar-relay approval bundle v1',
} as const;

/** A fresh code: 20 random bytes, as the user reads and types it. */
export function newApprovalCode(): string {
  return base32Groups(crypto.getRandomValues(new Uint8Array(20)));
}

/** The code's bytes; E_BAD_REQUEST when what was typed is not a code at all. */
export function approvalCodeBytes(code: string): Uint8Array {
  const bytes = parseBase32Groups(code);
  if (bytes === undefined) {
    throw new HangarError(
      'E_BAD_REQUEST',
      'that is not an approval code: type the 8 groups of 4 letters and digits the new computer shows (hangar account on it)',
    );
  }
  return bytes;
}

export function approvalTag(code: string, deviceKey: string, accountId: string): string {
  return toHex(hmac(sha256, approvalCodeBytes(code), lvConcat(LABELS.tag, fromHex(deviceKey), accountId)));
}

/** Constant-time enough for 32 bytes of hex that the attacker does not get to retry (one approval). */
function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Whether `tag` was made with this code for this key and account. */
export function tagMatches(code: string, deviceKey: string, accountId: string, tag: string): boolean {
  return sameHex(approvalTag(code, deviceKey, accountId), tag);
}

export type ApprovalBundleFields = Omit<ApprovalBundle, 'mac'>;

export function approvalBundleBytes(f: ApprovalBundleFields): Uint8Array {
  return lvConcat(
    LABELS.bundle,
    f.account_id,
    fromHex(f.approver_device_key),
    fromHex(f.device_key),
    String(f.issued_at),
    String(f.devices.length),
    ...f.devices.map(fromHex),
    String(f.hosts.length),
    ...f.hosts.flatMap((h) => [h.name, fromHex(h.host_key), fromHex(h.cert_fingerprint)]),
  );
}

function bundleMac(code: string, f: ApprovalBundleFields): string {
  const key = hkdf(sha256, approvalCodeBytes(code), new Uint8Array(0), new TextEncoder().encode(LABELS.bundleKey), 32);
  return toHex(hmac(sha256, key, approvalBundleBytes(f)));
}

export function sealApprovalBundle(code: string, f: ApprovalBundleFields): ApprovalBundle {
  return { ...f, mac: bundleMac(code, f) };
}

/**
 * The bundle if it was sealed with this code, for this device and account; E_AUTH_BAD_SIGNATURE
 * otherwise (made or altered by someone without the code: the relay).
 */
export function openApprovalBundle(
  code: string,
  bundle: ApprovalBundle,
  expect: { deviceKey: string; accountId: string },
): ApprovalBundleFields {
  const { mac, ...fields } = bundle;
  if (
    fields.device_key !== expect.deviceKey ||
    fields.account_id !== expect.accountId ||
    !sameHex(bundleMac(code, fields), mac)
  ) {
    throw new HangarError(
      'E_AUTH_BAD_SIGNATURE',
      "the approval bundle the relay handed this computer was not sealed with this computer's approval code: " +
        'the relay may be compromised. None of it was trusted',
    );
  }
  return fields;
}
