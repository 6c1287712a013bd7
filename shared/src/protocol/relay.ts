import { z } from 'zod';
import { ErrorShapeSchema } from './control.js';
import { HostName } from './hosts.js';
import { Ed25519PublicKeyHex, Ed25519SignatureHex } from './link.js';
import {
  BillingStatus,
  Entitlement,
  InviteToken,
  AccountMember,
  PaidPlanId,
  UsageReportParams,
  UsageReportResult,
} from './billing.js';
import { AccountId, DeviceId, Email, EnrollTokenId, EpochMs, HostId, hexBytes } from './relay-common.js';

/**
 * The relay's protocol: every HTTP procedure (`POST /v1/<procedure>`, JSON body = params,
 * 200 = result, 4xx/5xx = {error: {code, message}}) and every WebSocket message of the agent
 * socket (`/v1/agent`) and the device socket (`/v1/device`). The relay, its client
 * (shared/src/relay/relay-client.ts) and the tests all use this one table.
 * How to add a call: one entry in RELAY_PROCEDURES, one handler in relay/src/api/.
 * Binary values are lowercase hex, like the link handshake, so each has one encoding.
 * The path carries the version (/v1/); an incompatible change is a new path, not a field.
 */

const Empty = z.object({}).strict();
const hex = hexBytes;

export { AccountId, DeviceId, HostId, EnrollTokenId, EpochMs, Email };
/** 32 random bytes, hex: the relay part of an enrollment token (stored as its SHA-256). */
export const EnrollSecretHex = hex(32, 'relay secret');
/** SHA-256 of the agent's TLS certificate (DER), hex: what a device pins besides the host key. */
export const CertFingerprintHex = hex(32, 'certificate fingerprint');
export const ChallengeHex = hex(32, 'challenge');

export const Password = z
  .string()
  .min(8, 'password must be at least 8 characters')
  .max(512, 'password must be at most 512 characters');
/** What a user calls a device ("laptop", "Ana's phone"): printable, no control characters. */
export const DeviceName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[^\p{Cc}]+$/u, 'a device name may not contain control characters');
export const AccessToken = z.string().min(16).max(4096);
/** 32 random bytes, base64url (43 characters); the relay stores its SHA-256 only. */
export const RefreshToken = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, 'expected a refresh token (43 base64url characters)');

/**
 * Proof of possession of a device key: a signature over loginProofBytes (shared/src/relay/
 * statements.ts) with issued_at within ±5 minutes of the relay's clock.
 */
export const DeviceProof = z.object({ issued_at: EpochMs, signature: Ed25519SignatureHex });
export const DeviceRegistration = z.object({ public_key: Ed25519PublicKeyHex, name: DeviceName });

/** `first`: the device that made the account; the relay's record is informational, hosts decide. */
export const DeviceStatus = z.enum(['first', 'pending', 'endorsed', 'revoked']);
export type DeviceStatus = z.infer<typeof DeviceStatus>;

export const DeviceView = z.object({
  device_id: DeviceId,
  name: DeviceName,
  public_key: Ed25519PublicKeyHex,
  status: DeviceStatus,
  created_at: EpochMs,
  last_seen: EpochMs.nullable(),
  /** Key of the device whose statement endorsed / revoked it, when one did. */
  endorsed_by: Ed25519PublicKeyHex.nullable(),
  revoked_by: Ed25519PublicKeyHex.nullable(),
  /**
   * A pending device that was approved before: why no approval counts now (each chain of
   * endorsements to it went through a revoked device, so hosts unpinned it) and what to do. Absent
   * otherwise (and from relays older than this field).
   */
  needs_approval_again: z.string().max(2000).optional(),
  /** Whose it is in a Team account: a member's email, null for the owner's (absent from older relays). */
  member_email: Email.nullable().optional(),
});
export type DeviceView = z.infer<typeof DeviceView>;

export const AccountView = z.object({ account_id: AccountId, email: Email });

export const SessionTokens = z.object({
  access_token: AccessToken,
  access_expires_at: EpochMs,
  refresh_token: RefreshToken,
  refresh_expires_at: EpochMs,
});
export type SessionTokens = z.infer<typeof SessionTokens>;
export const LoginResult = SessionTokens.extend({ account: AccountView, device: DeviceView });
export type LoginResult = z.infer<typeof LoginResult>;

/** A direct address a device may dial: host:port or [v6]:port. */
const ReachAddress = z.string().min(1).max(300);
/** What a host publishes so that a device can reach it later; signed by the host key. */
export const PresenceRecord = z.object({
  addresses: z.array(ReachAddress).max(32),
  /** Tailscale addresses from `tailscale status --json` (100.x / fd7a: / MagicDNS name). */
  tailnet: z.array(ReachAddress).max(32),
  version: z.string().min(1).max(64),
  issued_at: EpochMs,
});
export type PresenceRecord = z.infer<typeof PresenceRecord>;

/**
 * A device's word that a host of the account has this key and certificate: made by the computer
 * that pinned it at its enrollment's first link, kept with the relay's host record, accepted by
 * other computers when signed by a device key they trust (PROTOCOL.md "Hosts enrolled later").
 */
export const HostStatement = z.object({
  kind: z.literal('host'),
  account_id: AccountId,
  host_key: Ed25519PublicKeyHex,
  cert_fingerprint: CertFingerprintHex,
  name: HostName,
  issued_at: EpochMs,
  signer_device_key: Ed25519PublicKeyHex,
  signature: Ed25519SignatureHex,
});
export type HostStatement = z.infer<typeof HostStatement>;

export const HostPresence = z.object({
  host_id: HostId,
  name: HostName,
  public_key: Ed25519PublicKeyHex,
  cert_fingerprint: CertFingerprintHex,
  enrolled_at: EpochMs,
  online: z.boolean(),
  last_seen: EpochMs.nullable(),
  record: PresenceRecord.nullable(),
  /** Host signature over presenceRecordBytes(public_key, record); verify before dialing. */
  signature: Ed25519SignatureHex.nullable(),
  /** Devices' statements that this host has this key (one per signer, newest kept). */
  vouches: z.array(HostStatement).max(16).optional(),
});
export type HostPresence = z.infer<typeof HostPresence>;

export const StatementKind = z.enum(['endorse', 'revoke']);
export type StatementKind = z.infer<typeof StatementKind>;
/** Tailnet-Lock style: made and signed by a device; the relay carries it; hosts verify it. */
export const Statement = z.object({
  kind: StatementKind,
  account_id: AccountId,
  subject_device_key: Ed25519PublicKeyHex,
  subject_name: DeviceName,
  issued_at: EpochMs,
  signer_device_key: Ed25519PublicKeyHex,
  signature: Ed25519SignatureHex,
});
export type Statement = z.infer<typeof Statement>;
/** A statement as stored: `seq` increases by one per statement of the account. */
export const StoredStatement = Statement.extend({ seq: z.number().int().positive(), stored_at: EpochMs });
export type StoredStatement = z.infer<typeof StoredStatement>;

/**
 * What a trusted computer hands a computer it approves, through the relay but sealed for it
 * (relay/PROTOCOL.md "More devices: the approval code"): MACed with a key derived from the code the
 * user carried between them, which the relay never sees, and bound to both device keys.
 */
export const ApprovalBundle = z.object({
  account_id: AccountId,
  approver_device_key: Ed25519PublicKeyHex,
  device_key: Ed25519PublicKeyHex,
  issued_at: EpochMs,
  /** Device keys the approver trusts (its own first). */
  devices: z.array(Ed25519PublicKeyHex).max(256),
  /** Hosts the approver pinned: what the new computer pins instead of the relay's word. */
  hosts: z
    .array(z.object({ name: HostName, host_key: Ed25519PublicKeyHex, cert_fingerprint: CertFingerprintHex }))
    .max(256),
  /** HMAC-SHA256 over approvalBundleBytes under HKDF(code) (shared/src/relay/approval.ts). */
  mac: hex(32, 'bundle MAC'),
});
export type ApprovalBundle = z.infer<typeof ApprovalBundle>;

export const AuditEntry = z.object({
  id: z.number().int().positive(),
  at: EpochMs,
  action: z.string(),
  /** `device:<id>`, `host:<id>`, `stripe` (a webhook), or `anonymous` (with the source address in `ip`). */
  actor: z.string(),
  /** The person whose device it was (the owner's or a member's email); null for hosts, Stripe, anonymous. */
  by: Email.nullable(),
  ip: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

const LoginParams = z.object({ email: Email, password: Password, device: DeviceRegistration, proof: DeviceProof });

/**
 * STUN/TURN servers and short-lived TURN credentials (the TURN REST API scheme coturn's
 * use-auth-secret checks: username `expiry:id`, credential base64 HMAC-SHA1 of it under the
 * secret the relay and coturn share). Null: the relay knows no TURN server.
 */
export const IceConfig = z.object({
  urls: z.array(z.string().regex(/^(stun|turns?):\S+$/, 'expected stun:, turn: or turns: URIs')).max(8),
  username: z.string().max(200),
  credential: z.string().max(200),
  /** By the relay's clock (coturn's, beside it, checks the username's expiry by it). */
  expires_at: EpochMs,
  /**
   * How long they last from when they were handed out: a receiver counts it from when the reply
   * came, by its own clock, which may be minutes off the relay's. Absent from older relays:
   * expires_at is compared with the receiver's clock then.
   */
  ttl_ms: z.number().int().positive().optional(),
});
export type IceConfig = z.infer<typeof IceConfig>;

/**
 * How long credentials that came just now can still be used, from now: as long as the relay says
 * they last, counted by the receiver's clock (a host or device minutes ahead of the relay took them
 * for expired that much early); from an older relay, until expires_at by `wallNow`, the receiver's.
 */
export function iceLifetimeMs(ice: IceConfig, wallNow: number): number {
  return ice.ttl_ms ?? ice.expires_at - wallNow;
}

/** A statement about one device, signed by a trusted device; the account's log stores it at `seq`. */
/** An outstanding invitation as the owner sees it (the token stays with whoever was given it). */
export const InviteView = z.object({ email: Email, invited_at: EpochMs.nullable(), expires_at: EpochMs });
export type InviteView = z.infer<typeof InviteView>;

const RemovedDevice = z.object({ device_id: DeviceId, name: DeviceName });

const DeviceStatementCall = {
  auth: 'device',
  params: z.object({ device_id: DeviceId, statement: Statement }),
  result: z.object({ seq: z.number().int().positive() }),
} as const;

/**
 * Who may call what, the one place that says so (the relay's router enforces it):
 * - `none`: open (and rate-limited).
 * - `device`: `Authorization: Bearer <access_token>` of a device the account trusts by the
 *   relay's record (its first device or an endorsed one). Any new procedure is this unless it
 *   says otherwise.
 * - `any_device`: any signed-in device, a `pending` one too. A pending device knows only the
 *   password: it may see its own pending state and wait for approval (and sign out with
 *   auth.logout), nothing of the account's hosts, devices, presence, addresses or billing.
 */
export type RelayAuth = 'none' | 'device' | 'any_device';

export const RELAY_PROCEDURES = {
  'relay.info': {
    auth: 'none',
    params: Empty,
    result: z.object({
      version: z.string(),
      /** The origin clients sign into proofs (the relay's --public-url, or how this request reached it). */
      origin: z.string(),
      oidc: z.object({ issuer: z.string(), client_id: z.string() }).nullable(),
    }),
  },
  'auth.signup': { auth: 'none', params: LoginParams, result: LoginResult },
  'auth.login': { auth: 'none', params: LoginParams, result: LoginResult },
  /** Sign in with an OpenID Connect ID token from the relay's --oidc-issuer (email_verified required). */
  'auth.oidc': {
    auth: 'none',
    params: z.object({ id_token: z.string().min(16).max(16_384), device: DeviceRegistration, proof: DeviceProof }),
    result: LoginResult,
  },
  /** Rotates: the old refresh token is spent; presenting it again revokes the whole session. */
  'auth.refresh': { auth: 'none', params: z.object({ refresh_token: RefreshToken }), result: SessionTokens },
  'auth.logout': { auth: 'none', params: z.object({ refresh_token: RefreshToken }), result: Empty },

  'hosts.enroll_token': {
    auth: 'device',
    params: z.object({ name: HostName }),
    result: z.object({ token_id: EnrollTokenId, relay_secret: EnrollSecretHex, expires_at: EpochMs }),
  },
  /** Called by the agent with the relay part of the token; single use, 15 minutes. */
  'hosts.enroll': {
    auth: 'none',
    params: z.object({
      token_id: EnrollTokenId,
      relay_secret: EnrollSecretHex,
      host: z.object({ public_key: Ed25519PublicKeyHex, cert_fingerprint: CertFingerprintHex, name: HostName }),
      /** Host signature over enrollProofBytes(token_id, public_key, cert_fingerprint). */
      proof: Ed25519SignatureHex,
    }),
    /** entitlement_key: the relay's key for entitlements (PROTOCOL.md "Billing"); the host keeps it. */
    result: z.object({ host_id: HostId, account_id: AccountId, entitlement_key: Ed25519PublicKeyHex }),
  },
  'hosts.list': { auth: 'device', params: Empty, result: z.object({ hosts: z.array(HostPresence) }) },
  /** TURN credentials for this device's WebRTC links (valid an hour). */
  'turn.credentials': { auth: 'device', params: Empty, result: z.object({ ice: IceConfig.nullable() }) },
  'hosts.remove': { auth: 'device', params: z.object({ host_id: HostId }), result: Empty },
  /** A device vouches for a host it pinned at its first link: kept with the host's record. */
  'hosts.vouch': { auth: 'device', params: z.object({ host_id: HostId, statement: HostStatement }), result: Empty },

  /** A pending device gets only its own entry (how it learns it was approved). */
  'devices.list': {
    auth: 'any_device',
    params: Empty,
    result: z.object({ devices: z.array(DeviceView), this_device: DeviceId }),
  },
  /**
   * A pending device offers its approval tag: HMAC(code, its key ‖ account id), the code being what
   * the user carries to a trusted computer. Only for itself, while pending.
   */
  'devices.offer_tag': { auth: 'any_device', params: z.object({ tag: hex(32, 'approval tag') }), result: Empty },
  /** The tag a pending device offered, with the key the relay holds for it (the approver checks both). */
  'devices.tag': {
    auth: 'device',
    params: z.object({ device_id: DeviceId }),
    result: z.object({ public_key: Ed25519PublicKeyHex, tag: hex(32, 'approval tag').nullable() }),
  },
  /** A trusted device's signed approval of a pending device, with the bundle sealed for it (none: --yes). */
  'devices.endorse': {
    ...DeviceStatementCall,
    params: DeviceStatementCall.params.extend({ bundle: ApprovalBundle.optional() }),
  },
  /** The bundle an approver left for this device (null: approved without a code, or not yet). */
  'devices.bundle': { auth: 'any_device', params: Empty, result: z.object({ bundle: ApprovalBundle.nullable() }) },
  /** A trusted device's signed revocation of a device (hosts stop letting it in). */
  'devices.revoke': DeviceStatementCall,
  'statements.list': {
    auth: 'device',
    params: z.object({ since: z.number().int().nonnegative().default(0) }),
    result: z.object({ statements: z.array(StoredStatement) }),
  },
  'audit.list': {
    auth: 'device',
    params: z.object({
      limit: z.number().int().min(1).max(500).default(100),
      /** Entries with an id below this one (paging back). */
      before: z.number().int().positive().optional(),
    }),
    result: z.object({ entries: z.array(AuditEntry) }),
  },

  // ---- billing (PROTOCOL.md "Billing") ----
  'billing.status': { auth: 'device', params: Empty, result: BillingStatus },
  /** The owner buys a plan: a Stripe Checkout URL to open in the browser. */
  'billing.checkout': { auth: 'device', params: z.object({ plan: PaidPlanId }), result: z.object({ url: z.url() }) },
  /** The owner manages card, invoices and cancellation: a Stripe customer portal URL. */
  'billing.portal': { auth: 'device', params: Empty, result: z.object({ url: z.url() }) },
  /** A host reports build minutes; each record carries the host's signature (no token needed). */
  'usage.report': { auth: 'none', params: UsageReportParams, result: UsageReportResult },
  /** Team: the owner invites someone by email; the token reaches them out of band (a link, a message). */
  'account.invite': {
    auth: 'device',
    params: z.object({ email: Email }),
    result: z.object({ email: Email, invite_token: InviteToken, expires_at: EpochMs }),
  },
  /** The invited person joins the account with their own password and device (pending until approved). */
  'account.accept_invite': {
    auth: 'none',
    params: LoginParams.extend({ invite_token: InviteToken }),
    result: LoginResult,
  },
  'account.members': { auth: 'device', params: Empty, result: z.object({ members: z.array(AccountMember) }) },
  /** The owner's outstanding invitations: who and until when, never the token. */
  'account.invites': { auth: 'device', params: Empty, result: z.object({ invites: z.array(InviteView) }) },
  /** The owner withdraws an invitation: its token is refused from then on. */
  'account.withdraw_invite': { auth: 'device', params: z.object({ email: Email }), result: Empty },
  /**
   * The owner removes a member (PROTOCOL.md "Team members: removing a person"): every device of
   * theirs that was ever approved must be revoked, by a revocation stored before or one in
   * `revocations` (signed by the calling device, as devices.revoke); one never approved is deleted.
   */
  'account.remove_member': {
    auth: 'device',
    params: z.object({
      email: Email,
      revocations: z
        .array(z.object({ device_id: DeviceId, statement: Statement }))
        .max(100)
        .default([]),
    }),
    result: z.object({
      email: Email,
      /** Their devices revoked (by this call or before): hosts refuse them. */
      revoked: z.array(RemovedDevice),
      /** Their devices never approved, deleted: no host ever trusted them. */
      deleted: z.array(RemovedDevice),
    }),
  },
} as const satisfies Record<string, { auth: RelayAuth; params: z.ZodType; result: z.ZodType }>;

export type RelayMethod = keyof typeof RELAY_PROCEDURES;
export type RelayParams<M extends RelayMethod> = z.input<(typeof RELAY_PROCEDURES)[M]['params']>;
export type RelayResult<M extends RelayMethod> = z.output<(typeof RELAY_PROCEDURES)[M]['result']>;

export function isRelayMethod(method: string): method is RelayMethod {
  return Object.prototype.hasOwnProperty.call(RELAY_PROCEDURES, method);
}

// ---- WebSockets ------------------------------------------------------------------------------

/** Relay timings both ends agree on (PROTOCOL.md "Heartbeats"). */
export const RELAY_HEARTBEAT_MS = 5_000;
/**
 * Silence after which a socket is dead. Under the 10 s target by one second, so a device sees
 * a vanished host offline within 10 s of its last word even when the relay's timers run late.
 */
export const RELAY_DEAD_AFTER_MS = 9_000;
export const SIGNAL_TIMEOUT_MS = 10_000;
export const SIGNAL_PAYLOAD_MAX = 64 * 1024;

/** WebSocket close codes the relay uses (4000-4999 are the application's). */
export const RELAY_CLOSE = {
  protocol: 4000,
  authFailed: 4001,
  authExpired: 4002,
  revoked: 4003,
  heartbeat: 4008,
  replaced: 4009,
  rateLimited: 4029,
  shuttingDown: 1001,
} as const;

export const SignalRequestId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,64}$/, 'request_id must be 8-64 letters, digits, "-" or "_"');
/** Opaque to the relay: the sender's JSON or text, signed end to end (signalBytes). */
export const SignalPayload = z
  .string()
  .max(SIGNAL_PAYLOAD_MAX, `payload must be at most ${SIGNAL_PAYLOAD_MAX} characters`);

/** The agent's name for one usage.report on its socket, echoed in usage.ack. */
const BatchId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'batch_id must be 1-64 letters, digits, "-" or "_"');
const Ping = z.object({ type: z.literal('ping') });
const Pong = z.object({ type: z.literal('pong') });
const SignalError = z.object({ type: z.literal('signal.error'), request_id: SignalRequestId, error: ErrorShapeSchema });
const SocketError = z.object({ type: z.literal('error'), error: ErrorShapeSchema });
const StatementsMessage = z.object({ type: z.literal('statements'), statements: z.array(StoredStatement) });

/** Agent → relay on /v1/agent. The first message must be `auth`, answering the challenge. */
export const AgentToRelay = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auth'), host_id: HostId, signature: Ed25519SignatureHex }),
  z.object({ type: z.literal('presence.update'), record: PresenceRecord, signature: Ed25519SignatureHex }),
  /** Asks for every statement of the account with seq > since (sent after each connect). */
  z.object({ type: z.literal('statements.since'), since: z.number().int().nonnegative() }),
  /** Build minutes, answered by usage.ack with the same batch_id (or the same as HTTP usage.report). */
  z.object({ type: z.literal('usage.report'), batch_id: BatchId, records: UsageReportParams.shape.records }),
  z.object({
    type: z.literal('signal'),
    to_device: DeviceId,
    request_id: SignalRequestId,
    payload: SignalPayload,
    signature: Ed25519SignatureHex,
  }),
  Ping,
  Pong,
]);
export type AgentToRelay = z.infer<typeof AgentToRelay>;

/**
 * The relayed path (PROTOCOL.md "Relayed links"): where UDP is blocked and no published address
 * answers, the relay joins a device's connection and one the agent opens for it, and copies bytes
 * between them unchanged. Both are HTTP/1.1 upgrades to this protocol; what flows after the 101
 * is the same end-to-end TLS link a direct dial carries, so the relay sees only TLS records.
 */
export const SPLICE_PROTOCOL = 'hangar-splice/1';
/** Device → relay: `Authorization: Bearer <access token>`, `Hangar-Host: <host id>`. */
export const SPLICE_DEVICE_PATH = '/v1/splice';
/** Agent → relay, after a `splice` message: `Hangar-Splice: <splice id>`. */
export const SPLICE_AGENT_PATH = '/v1/splice/accept';
/** 32 random bytes, hex: names one splice; single use, valid until the agent joins or 10 s pass. */
export const SpliceId = hex(32, 'splice id');

/** Relay → agent on /v1/agent. */
export const RelayToAgent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), challenge: ChallengeHex, relay_origin: z.string() }),
  z.object({
    type: z.literal('welcome'),
    host_id: HostId,
    account_id: AccountId,
    heartbeat_ms: z.number().int().positive(),
    dead_after_ms: z.number().int().positive(),
    /** The relay's entitlement key (as at enrollment): entitlements verify with it, offline too. */
    entitlement_key: Ed25519PublicKeyHex,
  }),
  StatementsMessage,
  z.object({ type: z.literal('usage.ack'), batch_id: BatchId, ...UsageReportResult.shape }),
  /** After welcome when the relay knows a TURN server, and renewed before the credentials expire. */
  z.object({ type: z.literal('ice'), ice: IceConfig }),
  /** After welcome, on every change of the account's plan or minutes, and renewed while online. */
  z.object({ type: z.literal('entitlement'), entitlement: Entitlement }),
  z.object({
    type: z.literal('signal'),
    request_id: SignalRequestId,
    from_device: z.object({ device_id: DeviceId, public_key: Ed25519PublicKeyHex }),
    payload: SignalPayload,
    signature: Ed25519SignatureHex,
  }),
  /** A device of the account asks for a relayed link: dial SPLICE_AGENT_PATH with this id. */
  z.object({ type: z.literal('splice'), splice_id: SpliceId, device_id: DeviceId }),
  SignalError,
  SocketError,
  Ping,
  Pong,
]);
export type RelayToAgent = z.infer<typeof RelayToAgent>;

/** Device → relay on /v1/device. The first message must be `auth`; re-send it to renew. */
export const DeviceToRelay = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auth'), access_token: AccessToken }),
  z.object({
    type: z.literal('signal'),
    to_host: HostId,
    request_id: SignalRequestId,
    payload: SignalPayload,
    signature: Ed25519SignatureHex,
  }),
  Ping,
  Pong,
]);
export type DeviceToRelay = z.infer<typeof DeviceToRelay>;

/** Relay → device on /v1/device. */
export const RelayToDevice = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('ready'),
    device_id: DeviceId,
    account_id: AccountId,
    /** When this socket closes unless a fresh `auth` arrives first. */
    expires_at: EpochMs,
    heartbeat_ms: z.number().int().positive(),
  }),
  /** Every host of the account on connect, then each change. */
  z.object({ type: z.literal('presence'), host: HostPresence }),
  z.object({ type: z.literal('host.removed'), host_id: HostId }),
  /** A device logged in to the account and waits for a trusted device to approve it. */
  z.object({ type: z.literal('device.pending'), device: DeviceView }),
  /** A device was endorsed or revoked. */
  z.object({ type: z.literal('device.changed'), device: DeviceView }),
  z.object({
    type: z.literal('signal'),
    request_id: SignalRequestId,
    from_host: z.object({ host_id: HostId, public_key: Ed25519PublicKeyHex }),
    payload: SignalPayload,
    signature: Ed25519SignatureHex,
  }),
  SignalError,
  SocketError,
  Ping,
  Pong,
]);
export type RelayToDevice = z.infer<typeof RelayToDevice>;
