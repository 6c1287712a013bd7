import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { toHex, type Ed25519Signer } from '@hangar/shared';
import type { RelayDb } from '../store/db.js';

/**
 * The relay's entitlement key (Ed25519): made once by migrate (or the first serve) and kept in
 * the database like the access-token key, so every replica signs with the same key and hosts
 * verify with the public half they were given at enrollment and on each welcome. It can sign
 * nothing a host acts on but entitlements, whose only power is to refuse metered jobs.
 */
const META_KEY = 'entitlement_key';

/** PKCS#8 DER of a new key, hex: what the meta row holds. */
export function newEntitlementKeyHex(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'der', type: 'pkcs8' }).toString('hex');
}

export async function loadEntitlementSigner(db: RelayDb): Promise<Ed25519Signer> {
  await db
    .insertInto('meta')
    .values({ key: META_KEY, value: newEntitlementKeyHex() })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await db.selectFrom('meta').select('value').where('key', '=', META_KEY).executeTakeFirstOrThrow();
  return signerOf(createPrivateKey({ key: Buffer.from(row.value, 'hex'), format: 'der', type: 'pkcs8' }));
}

export async function hasEntitlementKey(db: RelayDb): Promise<boolean> {
  const row = await db.selectFrom('meta').select('key').where('key', '=', META_KEY).executeTakeFirst();
  return row !== undefined;
}

function signerOf(privateKey: KeyObject): Ed25519Signer {
  // The raw 32-byte public key is the tail of its SPKI DER (a fixed 12-byte prefix for Ed25519).
  const publicKey = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(12));
  return { publicKey, sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
}

export function publicKeyHex(signer: Ed25519Signer): string {
  return toHex(signer.publicKey);
}
