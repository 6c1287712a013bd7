import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateAgentKey, verifyEd25519 } from '../../src/identity/keys.js';
import { loadOrCreateTlsCert } from '../../src/identity/tls.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('agent identity', () => {
  it('makes its keys once, private files 0600 in a 0700 directory, and reloads the same identity', async () => {
    dir = await mkdtemp(join(tmpdir(), 'hangar-identity-'));
    const key = await loadOrCreateAgentKey(dir);
    const tls = await loadOrCreateTlsCert(dir);
    expect((await stat(join(dir, 'identity'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'identity', 'agent_ed25519.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'identity', 'tls.key'))).mode & 0o777).toBe(0o600);
    expect(tls.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const again = await loadOrCreateAgentKey(dir);
    expect(again.publicKeyHex).toBe(key.publicKeyHex);
    expect((await loadOrCreateTlsCert(dir)).fingerprint).toBe(tls.fingerprint);
    const message = new TextEncoder().encode('transcript');
    expect(verifyEd25519(again.signer.publicKey, message, key.signer.sign(message))).toBe(true);
  });
});
