import { z } from 'zod';
import { ErrorShapeSchema, SchemaVersion } from './control.js';

/**
 * Messages of the link handshake. They travel as `control` frames (JSON) before the link is
 * authenticated; nothing else may be sent until `link.welcome`. Binary values are lowercase hex
 * so that a message is readable in a log and has exactly one encoding.
 *
 *   auth mode:  hello → challenge → proof(signature) → welcome(signature, host_info)
 *   pair mode:  hello → challenge(share Yb) → proof(share Ya, mac, signature)
 *               → welcome(mac, signature, host_info)
 *               (keyed by a pairing code, or with hello.enrollment by an enrollment's secret)
 *   either side may answer any message with `link.refused` and close.
 */
const hex = (bytes: number, what: string) =>
  z
    .string()
    .length(bytes * 2, `${what} must be ${bytes} bytes of lowercase hex`)
    .regex(/^[0-9a-f]+$/, `${what} must be lowercase hex`);

export const Ed25519PublicKeyHex = hex(32, 'public key');
export const Ed25519SignatureHex = hex(64, 'signature');
export const LinkNonceHex = hex(32, 'nonce');
/** A CPace share: a canonical ristretto255 encoding. */
export const PakeShareHex = hex(32, 'PAKE share');
export const MacHex = hex(32, 'MAC');

/**
 * What the sender's transport can do beyond one frame per message (FrameTransport.joinedFrames):
 * the device names what it offers in its hello, the agent what it will use of that in its
 * challenge. A peer of an older version drops the field unread and so names nothing; unknown names
 * are ignored, so a later feature needs no version step either.
 */
export const TransportFeatures = z
  .array(z.string().regex(/^[a-z0-9-]{1,32}$/, 'a transport feature is 1 to 32 of a-z, 0-9 and -'))
  .max(8, 'at most 8 transport features');

export const LinkMode = z.enum(['auth', 'pair']);
export type LinkMode = z.infer<typeof LinkMode>;

/** A handshake message: the schema version, its kind, and the fields of that kind. */
function linkMessage<Kind extends string, Shape extends z.ZodRawShape>(kind: Kind, shape: Shape) {
  return z.object({ schema_version: SchemaVersion, kind: z.literal(kind), ...shape });
}

export const LinkHello = linkMessage('link.hello', {
  mode: LinkMode,
  device_key: Ed25519PublicKeyHex,
  device_name: z.string().min(1).max(128),
  nonce: LinkNonceHex,
  /**
   * Pair mode only: the first link after a host enrollment. The token id names the enrollment
   * whose end-to-end secret keys the PAKE instead of a pairing code (relay/PROTOCOL.md step 4).
   * Spelled out here rather than imported from relay.ts, which imports this file.
   */
  enrollment: z
    .string()
    .regex(/^tok_[0-9a-f]{32}$/, 'enrollment must be an enrollment token id (tok_ and 32 hex digits)')
    .optional(),
  transport_features: TransportFeatures.optional(),
});
export type LinkHello = z.infer<typeof LinkHello>;

export const LinkChallenge = linkMessage('link.challenge', {
  agent_key: Ed25519PublicKeyHex,
  nonce: LinkNonceHex,
  /** Pair mode only: the agent's CPace share Yb. */
  share: PakeShareHex.optional(),
  transport_features: TransportFeatures.optional(),
});
export type LinkChallenge = z.infer<typeof LinkChallenge>;

export const LinkProof = linkMessage('link.proof', {
  /** Device signature over the transcript. */
  signature: Ed25519SignatureHex,
  /** Pair mode only: the device's CPace share Ya and its key-confirmation MAC. */
  share: PakeShareHex.optional(),
  mac: MacHex.optional(),
});
export type LinkProof = z.infer<typeof LinkProof>;

export const LinkWelcome = linkMessage('link.welcome', {
  /** Agent signature over the transcript and host_info (the exact string below). */
  signature: Ed25519SignatureHex,
  /** Pair mode only: the agent's key-confirmation MAC. */
  mac: MacHex.optional(),
  /** HostInfo as a JSON string, so the signed bytes are exactly the bytes received. */
  host_info: z.string().max(16 * 1024),
});
export type LinkWelcome = z.infer<typeof LinkWelcome>;

export const LinkRefused = linkMessage('link.refused', {
  error: ErrorShapeSchema,
});
export type LinkRefused = z.infer<typeof LinkRefused>;

export const LinkMessage = z.discriminatedUnion('kind', [
  LinkHello,
  LinkChallenge,
  LinkProof,
  LinkWelcome,
  LinkRefused,
]);
export type LinkMessage = z.infer<typeof LinkMessage>;
