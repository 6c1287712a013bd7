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
  return base32Groups(sha256(fromHex(publicKeyHex)).subarray(0, FINGERPRINT_BYTES));
}

/** 20 bytes as people read them: base32, 8 groups of 4 (a fingerprint, an approval code). */
export function base32Groups(digest: Uint8Array): string {
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

/** The 20 bytes behind a typed fingerprint or code (case, spaces and dashes ignored); undefined if it is not one. */
export function parseBase32Groups(text: string): Uint8Array | undefined {
  const plain = text.toUpperCase().replace(/[\s-]/g, '');
  if (plain.length !== (FINGERPRINT_BYTES * 8) / 5) return undefined;
  const out = new Uint8Array(FINGERPRINT_BYTES);
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of plain) {
    const index = ALPHABET.indexOf(char);
    if (index < 0) return undefined;
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >>> bits) & 0xff;
    }
  }
  return out;
}

/** What a user typed or pasted, compared without case, spaces or dashes. */
export function sameFingerprint(a: string, b: string): boolean {
  const plain = (text: string) => text.toUpperCase().replace(/[\s-]/g, '');
  return plain(a) === plain(b) && plain(a).length === (FINGERPRINT_BYTES * 8) / 5;
}
