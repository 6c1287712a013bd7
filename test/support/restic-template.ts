import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './processes.js';

/**
 * An empty restic repository and its password, as an agent makes them at its first backup
 * (backups/restic and backups/password in its data directory), made once and copied into the data
 * directory of each agent that needs one, for the backup tests that test something else than that
 * first backup.
 *
 * What it saves: `restic init` calibrates its key derivation (scrypt) to take about half a second,
 * which takes it seconds on a loaded machine; and every restic run after (the agent runs two or
 * three for each backup, list or restore) derives the key again with those parameters. So the
 * template is made by the real `restic init`, then its one key is written again with scrypt at
 * N = 2^10 (the same master key inside, so the same repository): restic reads the parameters from
 * the key file. The master key is sealed as restic seals it (AES-256-CTR, Poly1305-AES over the
 * ciphertext, restic's internal/crypto): the old key's MAC is checked with the same code before the
 * new one is written, and a restic that could not open the new key would fail every test using it.
 *
 * Tests that check the agent making the repository and its key start with none (no template).
 */
export class ResticTemplate {
  private made: string | undefined;

  /** Copies the repository and its password into `dataDir`/backups (0700, the password 0600). */
  seed(dataDir: string): void {
    this.made ??= makeTemplate();
    mkdirSync(join(dataDir, 'backups'), { recursive: true, mode: 0o700 });
    cpSync(this.made, join(dataDir, 'backups'), { recursive: true });
  }

  dispose(): void {
    if (this.made !== undefined) removeDir(this.made);
    this.made = undefined;
  }
}

function makeTemplate(): string {
  const dir = tempDir('restic-template');
  const passwordFile = join(dir, 'password');
  const password = randomBytes(32).toString('base64url');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const repository = join(dir, 'restic');
  const init = spawnSync('restic', ['init', '--repo', repository], {
    env: { ...process.env, RESTIC_PASSWORD_FILE: passwordFile },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (init.status !== 0) throw new Error(`restic init of the template failed: ${init.stderr}`);
  rekey(repository, password, 10);
  return dir;
}

interface KeyFile {
  kdf: string;
  N: number;
  r: number;
  p: number;
  salt: string;
  data: string;
}

/** Writes the repository's only key again, derived with scrypt at N = 2^logN, r = 8, p = 1. */
function rekey(repository: string, password: string, logN: number): void {
  const keys = join(repository, 'keys');
  const [name, ...more] = readdirSync(keys);
  if (name === undefined || more.length > 0) throw new Error(`expected one key in ${keys}`);
  const key = JSON.parse(readFileSync(join(keys, name), 'utf8')) as KeyFile;
  if (key.kdf !== 'scrypt') throw new Error(`restic key of kdf ${key.kdf}, not scrypt`);
  const masterKey = open(derive(password, Buffer.from(key.salt, 'base64'), key.N, key.r, key.p), key.data);
  const salt = randomBytes(64);
  const N = 2 ** logN;
  const data = seal(derive(password, salt, N, 8, 1), masterKey);
  const file = Buffer.from(
    JSON.stringify({ ...key, N, r: 8, p: 1, salt: salt.toString('base64'), data: data.toString('base64') }),
  );
  rmSync(join(keys, name));
  // A file's name in a restic repository is the SHA-256 of its content.
  writeFileSync(join(keys, createHash('sha256').update(file).digest('hex')), file, { mode: 0o400 });
}

/** restic's crypto.KDF: 64 bytes of scrypt, the AES-256 key then the MAC's k (16) and r (16). */
function derive(password: string, salt: Buffer, N: number, r: number, p: number): Buffer {
  return scryptSync(password, salt, 64, { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 });
}

function open(derived: Buffer, sealed: string): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  const iv = bytes.subarray(0, 16);
  const ciphertext = bytes.subarray(16, -16);
  if (!poly1305Aes(derived, iv, ciphertext).equals(bytes.subarray(-16))) {
    throw new Error("the restic key's MAC does not match: not restic's format, or the wrong password");
  }
  const decipher = createDecipheriv('aes-256-ctr', derived.subarray(0, 32), iv);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

function seal(derived: Buffer, plaintext: Buffer): Buffer {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', derived.subarray(0, 32), iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, ciphertext, poly1305Aes(derived, iv, ciphertext)]);
}

const P1305 = (1n << 130n) - 5n;
const littleEndian = (bytes: Buffer): bigint => {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
};

/** Poly1305-AES of `message`: r (clamped) from the derived key, s = AES-128 of the nonce under its k. */
function poly1305Aes(derived: Buffer, nonce: Buffer, message: Buffer): Buffer {
  const r = littleEndian(derived.subarray(48, 64)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const aes = createCipheriv('aes-128-ecb', derived.subarray(32, 48), null).setAutoPadding(false);
  const s = littleEndian(Buffer.concat([aes.update(nonce), aes.final()]));
  let acc = 0n;
  for (let i = 0; i < message.length; i += 16) {
    const block = message.subarray(i, i + 16);
    acc = ((acc + littleEndian(block) + (1n << BigInt(8 * block.length))) * r) % P1305;
  }
  let tag = (acc + s) & ((1n << 128n) - 1n);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number(tag & 0xffn);
    tag >>= 8n;
  }
  return out;
}
