import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { HangarError } from '../errors.js';
import { fromHex, lvConcat, toHex, type Ed25519Signer } from '../link/handshake.js';
import type { EntitlementFields, UsageRecord } from '../protocol/billing.js';
import type { HostStatement, PresenceRecord, Statement, StatementKind } from '../protocol/relay.js';

/**
 * The bytes behind every relay-related signature, defined once. Each kind has its own label,
 * so a signature made for one purpose (a login proof) can never pass as another (a statement),
 * and fields are length-prefixed (lvConcat) so none can slide into its neighbour.
 * Signing takes an injected signer: private keys stay in their owner (node:crypto KeyObject).
 */

export const RELAY_SIGNATURE_LABELS = {
  login: 'hangar-relay device-login v1',
  enroll: 'hangar-relay enroll v1',
  agentLink: 'hangar-relay agent-link v1',
  presence: 'hangar-relay presence v1',
  statement: 'hangar-relay statement v1',
  hostStatement: 'hangar-relay host statement v1',
  signal: 'hangar-relay signal v1',
  usage: 'hangar-relay usage v1',
  usageKey: 'hangar-relay usage-key v1',
  entitlement: 'hangar-relay entitlement v1',
} as const;

/** How far a login proof's issued_at may be from the relay's clock. */
export const LOGIN_PROOF_WINDOW_MS = 5 * 60_000;

/**
 * `https://Relay.example:443/x` → `https://relay.example`: what clients sign and the relay
 * compares. Scheme and host lowercase, default port dropped, no path.
 */
export function relayOrigin(url: string): string {
  const match = /^(https?):\/\/([^/?#]+)/i.exec(url.trim());
  if (!match) throw new HangarError('E_BAD_REQUEST', `relay URL "${url}" must start with http:// or https://`);
  const scheme = match[1]!.toLowerCase();
  let authority = match[2]!.toLowerCase();
  if (authority.includes('@')) throw new HangarError('E_BAD_REQUEST', `relay URL "${url}" may not contain credentials`);
  if ((scheme === 'https' && authority.endsWith(':443')) || (scheme === 'http' && authority.endsWith(':80'))) {
    authority = authority.replace(/:\d+$/, '');
  }
  return `${scheme}://${authority}`;
}

/**
 * What a device signs to log in: `identity` is the email for a password login and
 * `oidc:<sha256 of the id_token, hex>` for OpenID Connect, so the proof is bound to that token.
 */
export function loginProofBytes(f: { relayOrigin: string; identity: string; publicKey: string; issuedAt: number }) {
  return lvConcat(RELAY_SIGNATURE_LABELS.login, f.relayOrigin, f.identity, fromHex(f.publicKey), String(f.issuedAt));
}

/** What a host signs to enroll: binds its key and TLS certificate to one token. */
export function enrollProofBytes(f: { tokenId: string; publicKey: string; certFingerprint: string }) {
  return lvConcat(RELAY_SIGNATURE_LABELS.enroll, f.tokenId, fromHex(f.publicKey), fromHex(f.certFingerprint));
}

/** What an agent signs to open its relay socket: the relay's fresh challenge, bound to the relay. */
export function agentLinkBytes(f: { relayOrigin: string; challenge: string }) {
  return lvConcat(RELAY_SIGNATURE_LABELS.agentLink, f.relayOrigin, fromHex(f.challenge));
}

/** A host's presence record, bound to the host key; list lengths are explicit so lists cannot merge. */
export function presenceRecordBytes(hostKey: string, record: PresenceRecord) {
  return lvConcat(
    RELAY_SIGNATURE_LABELS.presence,
    fromHex(hostKey),
    record.version,
    String(record.issued_at),
    String(record.addresses.length),
    ...record.addresses,
    String(record.tailnet.length),
    ...record.tailnet,
  );
}

export interface StatementFields {
  kind: StatementKind;
  account_id: string;
  subject_device_key: string;
  subject_name: string;
  issued_at: number;
}

export function statementBytes(f: StatementFields) {
  return lvConcat(
    RELAY_SIGNATURE_LABELS.statement,
    f.kind,
    f.account_id,
    fromHex(f.subject_device_key),
    f.subject_name,
    String(f.issued_at),
  );
}

export type HostStatementFields = Omit<HostStatement, 'signer_device_key' | 'signature'>;

export function hostStatementBytes(f: HostStatementFields) {
  return lvConcat(
    RELAY_SIGNATURE_LABELS.hostStatement,
    f.account_id,
    fromHex(f.host_key),
    fromHex(f.cert_fingerprint),
    f.name,
    String(f.issued_at),
  );
}

/** A device vouches for a host it pinned itself (relay/PROTOCOL.md "Hosts enrolled later"). */
export function makeHostStatement(signer: Ed25519Signer, fields: HostStatementFields): HostStatement {
  return {
    ...fields,
    signer_device_key: toHex(signer.publicKey),
    signature: signHex(signer, hostStatementBytes(fields)),
  };
}

export function verifyHostStatement(statement: HostStatement): boolean {
  return verifyHex(statement.signer_device_key, hostStatementBytes(statement), statement.signature);
}

/**
 * A signaling envelope: sender and recipient keys are inside, so the relay can neither
 * redirect a message to another peer nor pass one peer's message off as another's.
 */
export function signalBytes(f: { senderKey: string; recipientKey: string; requestId: string; payload: string }) {
  return lvConcat(RELAY_SIGNATURE_LABELS.signal, fromHex(f.senderKey), fromHex(f.recipientKey), f.requestId, f.payload);
}

/** The fields of a usage record a host signs (all of it but the signature). */
export type UsageRecordFields = Omit<UsageRecord, 'signature'>;

/**
 * One started minute of a build job, as the host signs it: its key inside, so a record cannot be
 * passed off as another host's; the relay stores it once per usageRecordKey.
 */
export function usageRecordBytes(f: UsageRecordFields) {
  return lvConcat(
    RELAY_SIGNATURE_LABELS.usage,
    fromHex(f.host_key),
    f.attempt_id,
    f.job_id,
    String(f.minute_index),
    String(f.started_at),
  );
}

/**
 * The key of one (host, attempt, minute): the relay's unique key for the record, what it
 * acknowledges, and the `identifier` of its Stripe meter event (at most 100 characters there), so
 * a resend is counted once. 160 bits of SHA-256: no two minutes ever share one.
 */
export function usageRecordKey(f: Pick<UsageRecord, 'host_key' | 'attempt_id' | 'minute_index'>): string {
  const digest = sha256(
    lvConcat(RELAY_SIGNATURE_LABELS.usageKey, fromHex(f.host_key), f.attempt_id, String(f.minute_index)),
  );
  return `u1_${toHex(digest).slice(0, 40)}`;
}

/** An entitlement as the relay signs it; minutes_left null (no cap) is "-", which no number is. */
export function entitlementBytes(f: EntitlementFields) {
  return lvConcat(
    RELAY_SIGNATURE_LABELS.entitlement,
    f.account_id,
    f.host_id,
    f.plan,
    f.metered ? '1' : '0',
    f.minutes_left === null ? '-' : String(f.minutes_left),
    f.reason ?? '-',
    String(f.minute_ms),
    String(f.issued_at),
    String(f.valid_until),
  );
}

// ---- sign and verify -----------------------------------------------------------------------

export function signHex(signer: Ed25519Signer, bytes: Uint8Array): string {
  return toHex(signer.sign(bytes));
}

/**
 * Strict RFC 8032 verification (no ZIP-215 leniency, the same as node:crypto). Malformed hex,
 * a key that is not a curve point or a signature of the wrong size is an invalid signature:
 * callers only need yes or no, and a no is refused with its own message.
 */
export function verifyHex(publicKeyHex: string, bytes: Uint8Array, signatureHex: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(publicKeyHex) || !/^[0-9a-f]{128}$/.test(signatureHex)) return false;
  try {
    return ed25519.verify(fromHex(signatureHex), bytes, fromHex(publicKeyHex), { zip215: false });
  } catch (error) {
    // noble throws on a key that does not decode to a point: that is "not a valid signature".
    if (error instanceof Error) return false;
    throw error;
  }
}

/** A device makes an endorsement or revocation of another device (or, to leave, itself). */
export function makeStatement(signer: Ed25519Signer, fields: StatementFields): Statement {
  return {
    ...fields,
    signer_device_key: toHex(signer.publicKey),
    signature: signHex(signer, statementBytes(fields)),
  };
}

export function verifyStatement(statement: Statement): boolean {
  return verifyHex(statement.signer_device_key, statementBytes(statement), statement.signature);
}

export function signPresence(signer: Ed25519Signer, record: PresenceRecord): string {
  return signHex(signer, presenceRecordBytes(toHex(signer.publicKey), record));
}

export function verifyPresence(hostKey: string, record: PresenceRecord, signature: string): boolean {
  return verifyHex(hostKey, presenceRecordBytes(hostKey, record), signature);
}

export function signUsageRecord(signer: Ed25519Signer, f: Omit<UsageRecordFields, 'host_key'>): UsageRecord {
  const fields = { ...f, host_key: toHex(signer.publicKey) };
  return { ...fields, signature: signHex(signer, usageRecordBytes(fields)) };
}

export function verifyUsageRecord(record: UsageRecord): boolean {
  return verifyHex(record.host_key, usageRecordBytes(record), record.signature);
}

export function signSignal(
  signer: Ed25519Signer,
  f: { recipientKey: string; requestId: string; payload: string },
): string {
  return signHex(signer, signalBytes({ ...f, senderKey: toHex(signer.publicKey) }));
}

/** A signal as sent on a relay socket, signed; the sender adds whom it is for (to_host or to_device). */
export function signedSignal(
  signer: Ed25519Signer,
  f: { recipientKey: string; requestId: string; payload: string },
): { type: 'signal'; request_id: string; payload: string; signature: string } {
  const { recipientKey, requestId, payload } = f;
  return {
    type: 'signal',
    request_id: requestId,
    payload,
    signature: signSignal(signer, { recipientKey, requestId, payload }),
  };
}

export function verifySignal(f: {
  senderKey: string;
  recipientKey: string;
  requestId: string;
  payload: string;
  signature: string;
}): boolean {
  return verifyHex(f.senderKey, signalBytes(f), f.signature);
}

/** The `proof` of auth.signup / auth.login / auth.oidc, made now by the device's key. */
export function makeLoginProof(
  signer: Ed25519Signer,
  f: { relayOrigin: string; identity: string; issuedAt?: number },
): { issued_at: number; signature: string } {
  const issuedAt = f.issuedAt ?? Date.now();
  const bytes = loginProofBytes({ ...f, publicKey: toHex(signer.publicKey), issuedAt });
  return { issued_at: issuedAt, signature: signHex(signer, bytes) };
}

/** The login-proof identity for an OpenID Connect sign-in: binds the proof to that one ID token. */
export function oidcIdentity(idToken: string): string {
  return `oidc:${toHex(sha256(new TextEncoder().encode(idToken)))}`;
}
