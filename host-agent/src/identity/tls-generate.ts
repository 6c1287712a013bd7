const VALIDITY_DAYS = 3650;

/** A self-signed ECDSA P-256 certificate and its key, PEM. */
export async function generateTlsCert(): Promise<{ cert: string; key: string }> {
  const { default: selfsigned } = await import('selfsigned');
  const made = await selfsigned.generate([{ name: 'commonName', value: 'hangar-agent' }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + VALIDITY_DAYS * 24 * 60 * 60 * 1000),
    algorithm: 'sha256',
  });
  return { cert: made.cert, key: made.private };
}
