import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import selfsigned from 'selfsigned';
import { ensurePrivateDir, readIfExists } from './keys.js';

/**
 * The agent's TLS certificate: self-signed ECDSA P-256, made on first start. Devices pin its
 * SHA-256 fingerprint at pairing (DESIGN "The link"), so its names and expiry carry no trust;
 * the long validity just avoids a silent re-pin every year.
 */
export interface AgentTlsCert {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of the DER certificate, `AB:CD:…` (what the client sees as fingerprint256). */
  readonly fingerprint: string;
}

const VALIDITY_DAYS = 3650;

export async function loadOrCreateTlsCert(dataDir: string): Promise<AgentTlsCert> {
  const dir = join(dataDir, 'identity');
  const certPath = join(dir, 'tls.crt');
  const keyPath = join(dir, 'tls.key');
  const [cert, key] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (cert !== undefined && key !== undefined) return describe(cert.toString('utf8'), key.toString('utf8'));

  await ensurePrivateDir(dir);
  const made = await selfsigned.generate([{ name: 'commonName', value: 'hangar-agent' }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + VALIDITY_DAYS * 24 * 60 * 60 * 1000),
    algorithm: 'sha256',
  });
  await writeFile(keyPath, made.private, { mode: 0o600 });
  await writeFile(certPath, made.cert, { mode: 0o644 });
  return describe(made.cert, made.private);
}

function describe(cert: string, key: string): AgentTlsCert {
  return { cert, key, fingerprint: new X509Certificate(cert).fingerprint256 };
}
