import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { HangarError } from '../errors.js';
import { LINK_PROTOCOL_LABEL, fromHex, lvConcat, normalizePairingCode, type PakePassword } from './handshake.js';

/**
 * CPace (draft-irtf-cfrg-cpace) on ristretto255: turns a six-digit pairing code (or a host
 * enrollment's 32-byte end-to-end secret) into a shared key such that a man in the middle gets
 * one guess per run and nothing to test offline.
 * Loaded on demand through loadCpace() in handshake.ts; nothing else imports it.
 */

const CPACE_DSI = 'CPaceRistretto255';
const CPACE_DST = `${LINK_PROTOCOL_LABEL}-CPace-ristretto255_XMD:SHA-512_R255MAP_RO_`;

export interface CpaceSession {
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  deviceKey: Uint8Array;
  agentKey: Uint8Array;
}

/**
 * g = hash-to-ristretto255(DSI, PRS, sid, CI) as in the CPace draft §7 (generator_string), with
 * our length-prefixed encoding: PRS is the pairing code, sid the two nonces (fresh per
 * attempt, so one guess per run), CI the two public keys.
 */
function cpaceGenerator(password: PakePassword, s: CpaceSession) {
  const prs = passwordBytes(password);
  const sid = lvConcat(s.clientNonce, s.serverNonce);
  const ci = lvConcat(s.deviceKey, s.agentKey);
  return ristretto255_hasher.hashToCurve(lvConcat(CPACE_DSI, prs, sid, ci), { DST: CPACE_DST });
}

export interface CpaceSecret {
  readonly share: Uint8Array;
  readonly scalar: bigint;
}

/**
 * The PRS bytes. A code is its six ASCII digits; an enrollment is labelled and carries its token
 * id, so the two can never be the same PRS, and a peer that swaps the token id in its hello
 * (to make the host use another enrollment's secret) only makes the exchange fail.
 */
function passwordBytes(password: PakePassword): Uint8Array | string {
  if (typeof password !== 'string') {
    const secret = fromHex(password.secret);
    if (secret.length < 16) throw new HangarError('E_BAD_REQUEST', 'an enrollment secret needs at least 128 bits');
    return lvConcat(`${LINK_PROTOCOL_LABEL} enrollment`, password.tokenId, secret);
  }
  const prs = normalizePairingCode(password);
  if (prs === undefined)
    throw new HangarError('E_AUTH_BAD_CODE', `"${password}" is not a pairing code (six digits, like 123-456)`);
  return prs;
}

/** Picks a random scalar y and returns Y = y·g. Each side runs this once per attempt. */
export function cpaceStart(password: PakePassword, session: CpaceSession): CpaceSecret {
  const generator = cpaceGenerator(password, session);
  const Fn = ristretto255.Point.Fn;
  let scalar = 0n;
  // 64 random bytes reduced mod the group order: bias below 2^-250.
  while (scalar === 0n) scalar = Fn.create(bytesToNumberLE(randomBytes(64)));
  return { scalar, share: generator.multiply(scalar).toBytes() };
}

/**
 * ISK = SHA-256(DSI_ISK, transcript, K) with K = y·Y_peer. The transcript already contains
 * sid and both shares (draft §6.2 ISK input). Returns undefined when the peer share is not a
 * valid encoding or K is the identity (draft: abort), which the caller treats as a wrong code.
 */
export function cpaceIsk(secret: CpaceSecret, peerShare: Uint8Array, transcript: Uint8Array): Uint8Array | undefined {
  let shared;
  try {
    shared = ristretto255.Point.fromBytes(peerShare).multiply(secret.scalar);
  } catch {
    // Invalid ristretto255 encoding: not an exception worth surfacing, just a failed run.
    return undefined;
  }
  if (shared.is0()) return undefined;
  return sha256(lvConcat(`${CPACE_DSI}_ISK ${LINK_PROTOCOL_LABEL}`, transcript, shared.toBytes()));
}
