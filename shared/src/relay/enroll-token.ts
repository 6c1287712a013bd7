import { z } from 'zod';
import { HangarError } from '../errors.js';
import { toHex } from '../link/handshake.js';
import { Ed25519PublicKeyHex } from '../protocol/link.js';
import { EnrollSecretHex, EnrollTokenId } from '../protocol/relay.js';
import { parseOrThrow } from '../validate.js';
import { decodeBase64url, encodeBase64url } from './base64url.js';

/**
 * The one line a user pastes on a host: `hgr1_` + base64url(JSON). It carries the relay part
 * (token id + relay secret, which the relay checks once) and the end-to-end part `e` (32 bytes
 * the relay never sees, keying the first link's PAKE), plus the key of the device that made it,
 * so the host knows which device to expect at that first link.
 */
export const ENROLL_TOKEN_PREFIX = 'hgr1_';

export const EnrollToken = z.object({
  v: z.literal(1, { error: 'unsupported token version; update hangar-agent' }),
  /** The relay's URL, as the device used it. */
  r: z
    .string()
    .max(2048)
    .refine((url) => /^https?:\/\/[^/?#@]+/i.test(url), { error: 'expected the relay URL (http:// or https://)' }),
  i: EnrollTokenId,
  s: EnrollSecretHex,
  /** End-to-end secret, 32 bytes hex: never sent to the relay. */
  e: z.string().regex(/^[0-9a-f]{64}$/, 'end-to-end secret must be 32 bytes of lowercase hex'),
  /** The public key of the device that made the token. */
  d: Ed25519PublicKeyHex,
});
export type EnrollToken = z.infer<typeof EnrollToken>;

export function encodeEnrollToken(token: EnrollToken): string {
  const checked = parseOrThrow(EnrollToken, token, 'enrollment token');
  return ENROLL_TOKEN_PREFIX + encodeBase64url(new TextEncoder().encode(JSON.stringify(checked)));
}

/**
 * A new line for the relay's token `made`, by the device with key `deviceKey`: the end-to-end
 * secret `e` is made here (32 random bytes), returned beside the line for the device to keep.
 */
export function newEnrollLine(
  relayUrl: string,
  made: { token_id: string; relay_secret: string },
  deviceKey: string,
): { line: string; secret: string } {
  const secret = toHex(crypto.getRandomValues(new Uint8Array(32)));
  const line = encodeEnrollToken({
    v: 1,
    r: relayUrl,
    i: made.token_id,
    s: made.relay_secret,
    e: secret,
    d: deviceKey,
  });
  return { line, secret };
}

/** Parses a pasted line (surrounding whitespace and a trailing newline are fine). */
export function parseEnrollToken(line: string): EnrollToken {
  const text = line.trim();
  const again = 'copy the whole line that `hangar hosts enroll-token` printed (it starts with hgr1_)';
  if (!text.startsWith(ENROLL_TOKEN_PREFIX)) {
    throw new HangarError('E_BAD_REQUEST', `this is not an enrollment token: ${again}`);
  }
  const bytes = decodeBase64url(text.slice(ENROLL_TOKEN_PREFIX.length));
  if (bytes === undefined || bytes.length === 0) {
    throw new HangarError('E_BAD_REQUEST', `the enrollment token is damaged (not base64url): ${again}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new HangarError('E_BAD_REQUEST', `the enrollment token is damaged (${reason}): ${again}`);
  }
  return parseOrThrow(EnrollToken, json, 'enrollment token');
}
