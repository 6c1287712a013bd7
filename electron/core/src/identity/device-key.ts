import { HangarError, type Ed25519Signer } from '@hangar/shared';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * This app install's identity (DESIGN "Identity and trust"): an Ed25519 key made here, private
 * half never sent anywhere; hosts pin the public half when paired.
 */
export interface DeviceKey {
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key, hex: what hosts record as a paired device. */
  readonly publicKeyHex: string;
  readonly path: string;
}

export function deviceKeyPath(hangarHome: string): string {
  return join(hangarHome, 'device_ed25519.pem');
}

export async function loadOrCreateDeviceKey(hangarHome: string): Promise<DeviceKey> {
  const path = deviceKeyPath(hangarHome);
  const privateKey = await loadOrCreate(path);
  return { privateKey, publicKeyHex: Buffer.from(rawPublicKey(privateKey)).toString('hex'), path };
}

/** An Ed25519 SPKI is a fixed 12-byte header followed by the 32-byte key (RFC 8410 §4). */
export function rawPublicKey(privateKey: KeyObject): Uint8Array {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/** Signs with the device key, in this process: the key itself goes nowhere. */
export function deviceSigner(privateKey: KeyObject): Ed25519Signer {
  return { publicKey: rawPublicKey(privateKey), sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
}

async function loadOrCreate(path: string): Promise<KeyObject> {
  try {
    const key = createPrivateKey(await readFile(path));
    if (key.asymmetricKeyType !== 'ed25519')
      throw new HangarError('E_INTERNAL', `${path} is not an Ed25519 private key`);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  try {
    // 'wx' + mode: the file is 0600 from the moment it exists; a concurrent creator wins.
    await writeFile(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return createPrivateKey(await readFile(path));
    throw error;
  }
  return privateKey;
}

/** The fixed DER header of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Strict RFC 8032 verification with the platform's crypto; malformed keys or signatures are simply invalid. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return verify(null, message, key, signature);
}
