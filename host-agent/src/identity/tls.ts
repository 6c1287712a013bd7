import { HangarError } from '@hangar/shared';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { generateTlsCert } from './tls-generate.js';
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

export async function loadOrCreateTlsCert(dataDir: string): Promise<AgentTlsCert> {
  const dir = join(dataDir, 'identity');
  const certPath = join(dir, 'tls.crt');
  const keyPath = join(dir, 'tls.key');
  const [cert, key] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (cert !== undefined && key !== undefined) return describe(cert.toString('utf8'), key.toString('utf8'));

  await ensurePrivateDir(dir);
  const made = await generateOffThread();
  await writeFile(keyPath, made.key, { mode: 0o600 });
  await writeFile(certPath, made.cert, { mode: 0o644 });
  return describe(made.cert, made.key);
}

function describe(cert: string, key: string): AgentTlsCert {
  return { cert, key, fingerprint: new X509Certificate(cert).fingerprint256 };
}

/**
 * The X.509 libraries cost ~15 MB of resident memory that a long-running agent would keep for
 * its whole life after needing them once, so the certificate is made in a worker thread that
 * exits afterwards. From sources (tests run TypeScript directly) there is no worker file to
 * start, and it is made in-process.
 */
async function generateOffThread(): Promise<{ cert: string; key: string }> {
  const script = new URL('./make-tls-cert.js', import.meta.url);
  if (!existsSync(fileURLToPath(script))) return generateTlsCert();
  const worker = new Worker(script);
  try {
    const reply = await new Promise<{ ok: boolean; cert?: string; key?: string; message?: string }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    if (!reply.ok || !reply.cert || !reply.key)
      throw new HangarError('E_INTERNAL', `could not make the TLS certificate: ${reply.message}`);
    return { cert: reply.cert, key: reply.key };
  } finally {
    await worker.terminate();
  }
}
