import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { HangarError, isHangarError } from '../errors.js';
import { decodeFrame, encodeFrame } from '../frames.js';
import { LinkMessage, type LinkMode } from '../protocol/link.js';
import { SCHEMA_VERSION, type CloseReason } from '../protocol/control.js';
import type { FrameTransport, TransportFeature } from './transport.js';
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

// ---- pairing ------------------------------------------------------------------------------

/**
 * The CPace maths (ristretto255) is loaded only when a device pairs: the curve library costs a
 * long-running agent ~15 MB of resident memory, and authenticating a paired device needs none
 * of it (Ed25519 signatures are verified by the platform's own crypto).
 */
export function loadCpace(): Promise<typeof import('./cpace.js')> {
  return import('./cpace.js');
}

/**
 * What keys a pairing: the six-digit code `hangar-agent pair` printed, or a host enrollment's
 * end-to-end secret (32 bytes hex, from the `hgr1_` line; never seen by the relay) with the
 * token id it belongs to.
 */
export type PakePassword = string | { tokenId: string; secret: string };

/** `123-456`, `123 456` and `123456` are the same code; anything else is not a code. */
export function normalizePairingCode(code: string): string | undefined {
  const digits = code.replace(/[\s-]/g, '');
  return /^\d{6}$/.test(digits) ? digits : undefined;
}

/** Explicit key confirmation (draft §6.3 style): each side proves it derived the same ISK. */
export function confirmationMac(isk: Uint8Array, role: 'device' | 'agent', transcript: Uint8Array): Uint8Array {
  return hmac(sha256, isk, lvConcat(`${LINK_PROTOCOL_LABEL} confirm ${role}`, transcript));
}

/** Constant-time for equal lengths: MACs and keys must not leak where they differ. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
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

/** What the device offers in its hello: its transport's features, or nothing to name. */
export function offeredTransportFeatures(transport: FrameTransport): string[] | undefined {
  const features = featuresOf(transport);
  return features.length > 0 ? features.map((feature) => feature.feature) : undefined;
}

function featuresOf(transport: FrameTransport): TransportFeature[] {
  return [...(transport.joinedFrames ? [transport.joinedFrames] : []), ...(transport.moreFeatures ?? [])];
}

/**
 * Turns on in `transport` what both sides name: the agent passes the hello's offer (and names the
 * result in its challenge), the device the challenge's answer. Returns what was turned on.
 */
export function useTransportFeatures(transport: FrameTransport, named: readonly string[] | undefined): string[] {
  const used: string[] = [];
  for (const feature of featuresOf(transport)) {
    if (!named?.includes(feature.feature)) continue;
    feature.enable();
    used.push(feature.feature);
  }
  return used;
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
 * Frames a handshake reader keeps before they are asked for, at most (and their bytes). A peer
 * sends one message and waits for the answer (two in all, each side), so more waiting means a peer
 * that floods: the handshake is refused rather than each frame kept (up to 1 MiB each where the
 * transport allows it before authentication).
 */
export const HANDSHAKE_QUEUE_FRAMES = 4;
export const HANDSHAKE_QUEUE_BYTES = 64 * 1024;

/**
 * Pulls handshake messages off a transport one at a time. A close before the next message
 * rejects with `closedError()`; a malformed message, or more waiting than the handshake has
 * (HANDSHAKE_QUEUE_FRAMES, HANDSHAKE_QUEUE_BYTES), rejects with E_PROTOCOL.
 */
export function handshakeReader(transport: FrameTransport, closedError: (reason: CloseReason) => HangarError) {
  const queue: Uint8Array[] = [];
  let queuedBytes = 0;
  let waiter: { resolve: (m: LinkMessage) => void; reject: (e: HangarError) => void } | undefined;
  let closedWith: HangarError | undefined;
  const deliver = () => {
    if (waiter === undefined) return;
    const { resolve, reject } = waiter;
    const bytes = queue.shift();
    if (bytes !== undefined) {
      queuedBytes -= bytes.length;
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
    if (closedWith !== undefined) return;
    if (queue.length >= HANDSHAKE_QUEUE_FRAMES || queuedBytes + bytes.length > HANDSHAKE_QUEUE_BYTES) {
      // Keep none of it: the next read fails, and the handshake is refused.
      queue.length = 0;
      queuedBytes = 0;
      closedWith = new HangarError(
        'E_PROTOCOL',
        `the peer sent more than the handshake has room for (${HANDSHAKE_QUEUE_FRAMES} messages, ${HANDSHAKE_QUEUE_BYTES} bytes) before an answer`,
      );
      deliver();
      return;
    }
    queue.push(bytes);
    queuedBytes += bytes.length;
    deliver();
  });
  const closes = transport.onClose((reason) => {
    closedWith ??= closedError(reason);
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
