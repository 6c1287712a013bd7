import { ed25519, ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { HangarError, isHangarError } from '../errors.js';
import { decodeFrame, encodeFrame } from '../frames.js';
import { LinkMessage, type LinkMode } from '../protocol/link.js';
import { SCHEMA_VERSION, type CloseReason } from '../protocol/control.js';
import type { FrameTransport } from './transport.js';
import { parseOrThrow } from '../validate.js';

/**
 * Platform-neutral pieces of the link handshake: transcript, CPace, key confirmation,
 * signature payloads and message framing. Both ends (host-agent server, electron client) drive
 * their own state machine with these, so the bytes they hash and sign cannot drift apart.
 */

export const LINK_PROTOCOL_LABEL = 'hangar-link-v1';
/**
 * Label for TLS exported keying material (RFC 5705, and RFC 8446 §7.5 for TLS 1.3). Both ends
 * of one TLS session derive the same 32 bytes; two TLS sessions spliced by a proxy do not, so
 * signing/MACing a transcript that contains them binds the handshake to this very connection.
 */
export const TLS_EXPORTER_LABEL = 'EXPORTER-hangar-link-v1';
export const TLS_EXPORTER_BYTES = 32;

/** The private half stays in the caller (a node:crypto KeyObject); only sign() crosses over. */
export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

const encoder = new TextEncoder();

/** Length-prefixed concatenation (u32 big-endian length, then bytes) so fields cannot slide. */
export function lvConcat(...fields: (Uint8Array | string)[]): Uint8Array {
  const parts = fields.map((field) => (typeof field === 'string' ? encoder.encode(field) : field));
  const out = new Uint8Array(parts.reduce((n, part) => n + 4 + part.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  return out;
}

export interface TranscriptFields {
  mode: LinkMode;
  /** TLS exporter output, 32 bytes. */
  exporter: Uint8Array;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  deviceKey: Uint8Array;
  deviceName: string;
  agentKey: Uint8Array;
  /** SHA-256 of the agent's TLS certificate (DER). */
  certFingerprint: Uint8Array;
  /** Pair mode: CPace shares Ya (device) and Yb (agent). */
  deviceShare?: Uint8Array;
  agentShare?: Uint8Array;
}

export function transcriptHash(f: TranscriptFields): Uint8Array {
  const fields: (Uint8Array | string)[] = [
    `${LINK_PROTOCOL_LABEL} transcript`,
    f.mode,
    f.exporter,
    f.clientNonce,
    f.serverNonce,
    f.deviceKey,
    f.deviceName,
    f.agentKey,
    f.certFingerprint,
  ];
  if (f.mode === 'pair') {
    if (f.deviceShare === undefined || f.agentShare === undefined) {
      throw new HangarError('E_PROTOCOL', 'pair-mode transcript needs both PAKE shares');
    }
    fields.push(f.deviceShare, f.agentShare);
  }
  return sha256(lvConcat(...fields));
}

/** What each side signs: the role is part of the payload so a signature cannot be reflected. */
export function signaturePayload(role: 'device' | 'agent', transcript: Uint8Array, hostInfo = ''): Uint8Array {
  return lvConcat(`${LINK_PROTOCOL_LABEL} signature ${role}`, transcript, hostInfo);
}

export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    // zip215:false = strict RFC 8032 verification, the same acceptance rule as node:crypto.
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    // noble throws on malformed keys/signatures; for us that is simply "not valid".
    return false;
  }
}

// ---- CPace (draft-irtf-cfrg-cpace) on ristretto255 ----------------------------------------

const CPACE_DSI = 'CPaceRistretto255';
const CPACE_DST = `${LINK_PROTOCOL_LABEL}-CPace-ristretto255_XMD:SHA-512_R255MAP_RO_`;

/** `123-456`, `123 456` and `123456` are the same code; anything else is not a code. */
export function normalizePairingCode(code: string): string | undefined {
  const digits = code.replace(/[\s-]/g, '');
  return /^\d{6}$/.test(digits) ? digits : undefined;
}

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
function cpaceGenerator(code: string, s: CpaceSession) {
  const prs = normalizePairingCode(code);
  if (prs === undefined)
    throw new HangarError('E_AUTH_BAD_CODE', `"${code}" is not a pairing code (six digits, like 123-456)`);
  const sid = lvConcat(s.clientNonce, s.serverNonce);
  const ci = lvConcat(s.deviceKey, s.agentKey);
  return ristretto255_hasher.hashToCurve(lvConcat(CPACE_DSI, prs, sid, ci), { DST: CPACE_DST });
}

export interface CpaceSecret {
  readonly share: Uint8Array;
  readonly scalar: bigint;
}

/** Picks a random scalar y and returns Y = y·g. Each side runs this once per attempt. */
export function cpaceStart(code: string, session: CpaceSession): CpaceSecret {
  const generator = cpaceGenerator(code, session);
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

/** Explicit key confirmation (draft §6.3 style): each side proves it derived the same ISK. */
export function confirmationMac(isk: Uint8Array, role: 'device' | 'agent', transcript: Uint8Array): Uint8Array {
  return hmac(sha256, isk, lvConcat(`${LINK_PROTOCOL_LABEL} confirm ${role}`, transcript));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && equalBytes(a, b);
}

// ---- encodings --------------------------------------------------------------------------

export function randomNonce(): Uint8Array {
  return randomBytes(32);
}

export function toHex(bytes: Uint8Array): string {
  return bytesToHex(bytes);
}

export function fromHex(hex: string): Uint8Array {
  return hexToBytes(hex);
}

/** `AB:CD:…` (Node's fingerprint256 format, what users see) ⇄ 32 bytes. */
export function fingerprintToBytes(fingerprint: string): Uint8Array {
  const hex = fingerprint.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new HangarError('E_PROTOCOL', `"${fingerprint}" is not a SHA-256 fingerprint`);
  return hexToBytes(hex);
}

export function formatFingerprint(bytes: Uint8Array): string {
  return (bytesToHex(bytes).toUpperCase().match(/../g) ?? []).join(':');
}

export function encodeLinkMessage(message: LinkMessage): Uint8Array {
  return encodeFrame({ type: 'control', json: JSON.stringify(message) });
}

export function refusedMessage(error: HangarError): Uint8Array {
  return encodeLinkMessage({ schema_version: SCHEMA_VERSION, kind: 'link.refused', error: error.toJSON() });
}

/** Decodes one handshake frame; anything malformed becomes E_PROTOCOL (never another error). */
export function decodeLinkMessage(bytes: Uint8Array): LinkMessage {
  try {
    const frame = decodeFrame(bytes);
    if (frame.type !== 'control')
      throw new HangarError('E_PROTOCOL', `expected a handshake message, got a ${frame.type} frame`);
    return parseOrThrow(LinkMessage, JSON.parse(frame.json), 'link handshake');
  } catch (error) {
    if (isHangarError(error) && error.code === 'E_PROTOCOL') throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new HangarError('E_PROTOCOL', `malformed handshake message: ${message.slice(0, 300)}`);
  }
}

/**
 * Pulls handshake messages off a transport one at a time. A close before the next message
 * rejects with `closedError()`; a malformed message rejects with E_PROTOCOL.
 */
export function handshakeReader(transport: FrameTransport, closedError: (reason: CloseReason) => HangarError) {
  const queue: Uint8Array[] = [];
  let waiter: { resolve: (m: LinkMessage) => void; reject: (e: HangarError) => void } | undefined;
  let closedWith: HangarError | undefined;
  const deliver = () => {
    if (waiter === undefined) return;
    const { resolve, reject } = waiter;
    const bytes = queue.shift();
    if (bytes !== undefined) {
      waiter = undefined;
      try {
        resolve(decodeLinkMessage(bytes));
      } catch (error) {
        reject(error as HangarError);
      }
    } else if (closedWith !== undefined) {
      waiter = undefined;
      reject(closedWith);
    }
  };
  const frames = transport.onFrame((bytes) => {
    queue.push(bytes);
    deliver();
  });
  const closes = transport.onClose((reason) => {
    closedWith = closedError(reason);
    deliver();
  });
  return {
    next(): Promise<LinkMessage> {
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        deliver();
      });
    },
    /** Stops reading; frames after this stay queued in the transport for the link's owner. */
    dispose(): void {
      frames.dispose();
      closes.dispose();
    },
  };
}

/** Narrows a message to the expected kind; a `link.refused` becomes the peer's HangarError. */
export function expectMessage<K extends LinkMessage['kind']>(
  message: LinkMessage,
  kind: K,
): Extract<LinkMessage, { kind: K }> {
  if (message.kind === kind) return message as Extract<LinkMessage, { kind: K }>;
  if (message.kind === 'link.refused') throw HangarError.from(message.error);
  throw new HangarError('E_PROTOCOL', `expected ${kind} during the link handshake, got ${message.kind}`);
}
