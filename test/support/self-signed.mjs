// A throwaway TLS certificate for loopback, shared by tests (TypeScript) and benchmarks (plain
// .mjs, which cannot import TypeScript): a P-256 key and a certificate signing itself, valid a day.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Makes `<name>-key.pem` and `<name>-cert.pem` in `dir` with openssl, unless they are there from
 * an earlier call (one per run); with `ip`, the certificate names that address (subjectAltName),
 * so a client that checks it against the CA can reach `https://<ip>`.
 * @param {string} dir
 * @param {{ name: string, commonName: string, ip?: string }} options
 * @returns {{ key: Buffer, cert: Buffer }}
 */
export function selfSignedCertificate(dir, { name, commonName, ip }) {
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}-cert.pem`);
  if (!existsSync(cert)) {
    const altName = ip === undefined ? [] : ['-addext', `subjectAltName=IP:${ip}`];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${commonName}`,
        ...altName,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
  }
  return { key: readFileSync(key), cert: readFileSync(cert) };
}
