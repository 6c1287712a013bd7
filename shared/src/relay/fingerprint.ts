import { sha256 } from '@noble/hashes/sha2.js';
import { fromHex } from '../link/handshake.js';

/**
 * A device key as people compare it by eye (Syncthing-style): the first 160 bits of SHA-256 of
 * the raw 32-byte key, in base32 (RFC 4648: A-Z, 2-7, nothing easy to misread as another), in 8
 * groups of 4. `hangar login` prints it on the new device; `hangar devices approve` shows the one
 * the relay holds on the trusted device, and the user checks that they match: that is what stops
 * a relay that swapped the new device's key from getting its own key endorsed.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const FINGERPRINT_BYTES = 20;

export function deviceFingerprint(publicKeyHex: string): string {
  const digest = sha256(fromHex(publicKeyHex)).subarray(0, FINGERPRINT_BYTES);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{4}/g)!.join('-');
}

/** What a user typed or pasted, compared without case, spaces or dashes. */
export function sameFingerprint(a: string, b: string): boolean {
  const plain = (text: string) => text.toUpperCase().replace(/[\s-]/g, '');
  return plain(a) === plain(b) && plain(a).length === (FINGERPRINT_BYTES * 8) / 5;
}
