import type { Generated } from 'kysely';

/**
 * The relay's tables, as kysely sees them. Times are milliseconds since the epoch (bigint in
 * PostgreSQL, read back as numbers); flags are 0/1 integers so both dialects read the same.
 * No private key and no usable secret is stored: device and host keys are public, and
 * passwords, refresh tokens and enrollment secrets are kept only as hashes.
 */
export interface RelayTables {
  meta: { key: string; value: string };
  accounts: {
    id: string;
    email: string;
    /** `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`, or null for an account that signs in with OIDC only. */
    password_hash: string | null;
    oidc_issuer: string | null;
    oidc_subject: string | null;
    statement_seq: number;
    created_at: number;
  };
  devices: {
    id: string;
    account_id: string;
    public_key: string;
    name: string;
    status: string;
    created_at: number;
    last_seen: number | null;
    endorsed_by: string | null;
    revoked_by: string | null;
    /** The account member whose device this is; null for the owner's (and devices made before members). */
    member_email: string | null;
  };
  refresh_tokens: {
    id: string;
    family_id: string;
    account_id: string;
    device_id: string;
    token_hash: string;
    created_at: number;
    expires_at: number;
    used_at: number | null;
    revoked_at: number | null;
  };
  enroll_tokens: {
    id: string;
    account_id: string;
    device_id: string;
    name: string;
    secret_hash: string;
    created_at: number;
    expires_at: number;
    used_at: number | null;
    host_id: string | null;
    /** The login (refresh-token family) that made it: its logout ends the token. Null before 006. */
    session_id: string | null;
  };
  hosts: {
    id: string;
    account_id: string;
    public_key: string;
    cert_fingerprint: string;
    name: string;
    enrolled_at: number;
    enrolled_by: string;
    online: number;
    replica_id: string | null;
    connection_id: string | null;
    last_seen: number | null;
    record_json: string | null;
    record_signature: string | null;
    presence_version: number;
    /** Devices' statements that this host has its key (hosts.vouch): a JSON array of HostStatement. */
    vouches_json: string | null;
  };
  /** What a pending device offered for its approval (a tag) and what its approver left it (a sealed bundle). */
  device_approvals: {
    device_id: string;
    account_id: string;
    tag: string | null;
    bundle_json: string | null;
    updated_at: number;
  };
  statements: {
    account_id: string;
    seq: number;
    kind: string;
    subject_device_id: string;
    subject_device_key: string;
    subject_name: string;
    issued_at: number;
    signer_device_key: string;
    signature: string;
    stored_at: number;
  };
  audit: {
    id: Generated<number>;
    at: number;
    account_id: string | null;
    actor: string;
    action: string;
    ip: string | null;
    request_id: string | null;
    detail: string;
  };
  replicas: { id: string; started_at: number; heartbeat_at: number };
  /** Bodies of cross-replica messages too large for a NOTIFY payload (8000 bytes). */
  bus_messages: { id: string; body: string; created_at: number };
  billing_customers: { account_id: string; stripe_customer_id: string; created_at: number };
  /** Each Stripe subscription as last fetched from Stripe (never as an event told it). */
  subscriptions: {
    id: string;
    account_id: string;
    stripe_customer_id: string;
    plan: string;
    status: string;
    cancel_at_period_end: number;
    period_start: number;
    period_end: number;
    created_at: number;
    fetched_at: number;
  };
  /** Webhook events already applied: a replayed event is answered 200 and changes nothing. */
  stripe_events: { id: string; type: string; account_id: string | null; applied_at: number };
  usage_records: {
    key: string;
    account_id: string;
    host_id: string;
    attempt_id: string;
    job_id: string;
    minute_index: number;
    started_at: number;
    minute_at: number;
    received_at: number;
    meter_state: 'pending' | 'sent' | 'failed' | 'none';
    stripe_customer_id: string | null;
    send_attempts: number;
    next_send_at: number;
    sent_at: number | null;
    last_error: string | null;
  };
  account_members: {
    account_id: string;
    email: string;
    role: string;
    password_hash: string | null;
    invite_hash: string | null;
    invited_by: string | null;
    invited_at: number | null;
    invite_expires_at: number | null;
    joined_at: number | null;
  };
}
