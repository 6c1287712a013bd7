import { HangarError } from '@hangar/shared';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashing with scrypt from node:crypto (no native add-on to build on the relay's
 * machine). Default cost is OWASP's scrypt recommendation, N=2^17, r=8, p=1 (128 MiB, about
 * a fifth of a second per hash); the parameters are stored with each hash, so raising the cost
 * later leaves old hashes verifiable. `--password-hash-cost` lowers log2 N for tests and benches.
 */
export const DEFAULT_PASSWORD_COST = 17;
const R = 8;
const P = 1;
const KEY_BYTES = 32;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128·N·r, or node refuses the parameters.
    scrypt(password, salt, KEY_BYTES, { N, r, p, maxmem: 256 * N * r }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, logN: number): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, logN, R, P);
  return `scrypt$${logN}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') throw new HangarError('E_INTERNAL', 'unknown password hash format');
  const [logN, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const expected = Buffer.from(parts[5]!, 'base64url');
  const key = await derive(password, Buffer.from(parts[4]!, 'base64url'), logN, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * An unknown email costs the same as a wrong password (a hash of the same cost), so response
 * time does not tell which emails have accounts.
 */
export async function burnPasswordTime(password: string, logN: number): Promise<void> {
  await derive(password, randomBytes(16), logN, R, P);
}
