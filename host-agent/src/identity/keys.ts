import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError, toHex, type Ed25519Signer } from '@hangar/shared';

/** The agent's long-term identity: made on this machine, never sent anywhere (DESIGN "Identity"). */
export interface AgentKey {
  readonly privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key, hex: what devices pin. */
  readonly publicKeyHex: string;
  readonly signer: Ed25519Signer;
  readonly path: string;
}

export function agentKeyPath(dataDir: string): string {
  return join(dataDir, 'identity', 'agent_ed25519.pem');
}

export async function loadOrCreateAgentKey(dataDir: string): Promise<AgentKey> {
  const path = agentKeyPath(dataDir);
  const privateKey = await loadOrCreateEd25519(path);
  const signer = ed25519Signer(privateKey);
  return { privateKey, publicKeyHex: toHex(signer.publicKey), signer, path };
}

/** Strict RFC 8032 verification with the platform's crypto; malformed keys or signatures are simply invalid. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return verify(null, message, key, signature);
}

/** The fixed DER header of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function ed25519Signer(privateKey: KeyObject): Ed25519Signer {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  // An Ed25519 SPKI is a fixed 12-byte header followed by the 32-byte key (RFC 8410 §4).
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return { publicKey, sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
}

/**
 * Reads a PKCS#8 PEM Ed25519 key, or makes one. The directory is 0700 and the file 0600 from
 * the moment it exists ('wx' + mode), so there is no window where another user can read it.
 */
export async function loadOrCreateEd25519(path: string): Promise<KeyObject> {
  const existing = await readIfExists(path);
  if (existing !== undefined) {
    const key = createPrivateKey(existing);
    if (key.asymmetricKeyType !== 'ed25519')
      throw new HangarError('E_INTERNAL', `${path} is not an Ed25519 private key`);
    return key;
  }
  await ensurePrivateDir(dirname(path));
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  try {
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process created it first: use theirs so both agree on one identity.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return createPrivateKey(await readFile(path));
    throw error;
  }
  return privateKey;
}

export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
