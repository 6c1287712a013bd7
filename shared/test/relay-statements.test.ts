import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  HangarError,
  decodeBase64url,
  encodeBase64url,
  encodeEnrollToken,
  loginProofBytes,
  makeLoginProof,
  makeStatement,
  parseEnrollToken,
  relayOrigin,
  signPresence,
  statementBytes,
  toHex,
  verifyHex,
  verifyPresence,
  verifyStatement,
  type Ed25519Signer,
} from '@hangar/shared';

function signer(): Ed25519Signer {
  const secret = ed25519.utils.randomSecretKey();
  return { publicKey: ed25519.getPublicKey(secret), sign: (message) => ed25519.sign(message, secret) };
}

describe('relay signatures and the enrollment line', () => {
  it('base64url round-trips any bytes and refuses what is not canonical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(decodeBase64url(encodeBase64url(bytes))).toEqual(bytes);
      }),
    );
    expect(decodeBase64url('ab+c')).toBeUndefined();
    expect(decodeBase64url('a')).toBeUndefined();
    expect(decodeBase64url('AB')).toBeUndefined(); // 'B' leaves non-zero bits
  });

  it('an enrollment line round-trips and a damaged one is refused with what to do', () => {
    const token = {
      v: 1 as const,
      r: 'https://relay.example',
      i: `tok_${'1'.repeat(32)}`,
      s: 'a'.repeat(64),
      e: 'b'.repeat(64),
      d: 'c'.repeat(64),
    };
    expect(parseEnrollToken(encodeEnrollToken(token) + '\n')).toEqual(token);
    const error = (() => {
      try {
        parseEnrollToken(encodeEnrollToken(token).slice(0, 40));
      } catch (e) {
        return e as HangarError;
      }
      return undefined;
    })();
    expect(error?.code).toBe('E_BAD_REQUEST');
    expect(error?.message).toMatch(/hgr1_/);
    expect(() => parseEnrollToken(encodeEnrollToken({ ...token, s: 'A'.repeat(64) }))).toThrow(/lowercase hex/);
  });

  it('a statement verifies only as made: any field changed, or another signer, fails', () => {
    const device = signer();
    const statement = makeStatement(device, {
      kind: 'endorse',
      account_id: `acct_${'2'.repeat(32)}`,
      subject_device_key: 'd'.repeat(64),
      subject_name: 'phone',
      issued_at: 1_700_000_000_000,
    });
    expect(verifyStatement(statement)).toBe(true);
    expect(verifyStatement({ ...statement, kind: 'revoke' })).toBe(false);
    expect(verifyStatement({ ...statement, subject_name: 'phone2' })).toBe(false);
    expect(verifyStatement({ ...statement, issued_at: statement.issued_at + 1 })).toBe(false);
    expect(verifyStatement({ ...statement, signer_device_key: toHex(signer().publicKey) })).toBe(false);
    expect(verifyStatement({ ...statement, signer_device_key: 'zz' })).toBe(false);
  });

  it('a signature made for one purpose never verifies as another (labels)', () => {
    const device = signer();
    const key = toHex(device.publicKey);
    const proof = makeLoginProof(device, { relayOrigin: 'https://relay.example', identity: 'a@b.c', issuedAt: 5 });
    expect(
      verifyHex(
        key,
        loginProofBytes({ relayOrigin: 'https://relay.example', identity: 'a@b.c', publicKey: key, issuedAt: 5 }),
        proof.signature,
      ),
    ).toBe(true);
    const asStatement = statementBytes({
      kind: 'endorse',
      account_id: 'https://relay.example',
      subject_device_key: key,
      subject_name: 'a@b.c',
      issued_at: 5,
    });
    expect(verifyHex(key, asStatement, proof.signature)).toBe(false);
  });

  it('a presence record is bound to its host key and to its list boundaries', () => {
    const host = signer();
    const key = toHex(host.publicKey);
    const record = { addresses: ['a:1', 'b:2'], tailnet: [], version: '1', issued_at: 9 };
    const signature = signPresence(host, record);
    expect(verifyPresence(key, record, signature)).toBe(true);
    expect(verifyPresence(key, { ...record, addresses: ['a:1'], tailnet: ['b:2'] }, signature)).toBe(false);
    expect(verifyPresence(toHex(signer().publicKey), record, signature)).toBe(false);
  });

  it('relay origins are normalized the way both ends compute them', () => {
    expect(relayOrigin('HTTPS://Relay.Example:443/some/path')).toBe('https://relay.example');
    expect(relayOrigin('http://127.0.0.1:8443/')).toBe('http://127.0.0.1:8443');
    expect(() => relayOrigin('ftp://x')).toThrow(HangarError);
    expect(() => relayOrigin('https://user:pw@relay.example')).toThrow(/credentials/);
  });
});
