import type { TurnConfig } from './turn.js';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { HostStatement, PresenceRecord, type DeviceView, type HostPresence } from '@hangar/shared';
import { z } from 'zod';
import type { LoginThrottle } from './accounts/login-throttle.js';
import type { AccessTokens } from './accounts/tokens.js';
import type { Billing } from './billing/billing.js';
import type { OidcVerifier } from './accounts/oidc.js';
import type { RelayBus } from './bus/bus.js';
import type { AuditLog } from './ops/audit.js';
import type { RelayMetrics } from './ops/metrics.js';
import type { RateLimiter } from './ops/rate-limit.js';
import type { RelayDb } from './store/db.js';
import type { RelayTables } from './store/schema.js';

/** What every part of a running relay shares; built once in server.ts (the composition root). */
export interface RelayContext {
  readonly db: RelayDb;
  readonly dialect: 'sqlite' | 'postgres';
  readonly bus: RelayBus;
  readonly now: () => number;
  readonly logger: Logger;
  readonly limits: RateLimiter;
  /** Wrong passwords: backoff per (email, address), per address and per trusted key; a high bound per email. */
  readonly loginThrottle: LoginThrottle;
  readonly audit: AuditLog;
  readonly metrics: RelayMetrics;
  readonly accessTokens: AccessTokens;
  readonly oidc: OidcVerifier | undefined;
  /** log2 N of scrypt for new password hashes. */
  readonly passwordCost: number;
  /** This process's id among the replicas (presence rows carry it). */
  readonly replicaId: string;
  /** --public-url's origin, when set; else each request's own origin. */
  readonly publicOrigin: string | undefined;
  readonly version: string;
  /** Plans, minutes and entitlements; off (everything allowed, nothing metered) without Stripe settings. */
  readonly billing: Billing;
  /** The TURN server beside the relay (--turn), whose short-lived credentials devices and hosts get. */
  readonly turn: TurnConfig | undefined;
  /** --metrics-token-file's token: /metrics answers a request bearing it, and otherwise only from this host. */
  readonly metricsToken: string | undefined;
  /**
   * Who a request comes from, for every per-address limit and the audit log: the socket's peer, or
   * behind --trust-proxy the address the proxy saw (forwardedClient). The one reading for Fastify's
   * routes, the WebSocket upgrades and the splice upgrades alike.
   */
  readonly clientAddress: (request: IncomingMessage) => string;
  /** Tests only (RelayOptions.afterAuthRead). */
  readonly afterAuthRead?: (() => Promise<void>) | undefined;
  /** Tests only (RelayOptions.afterMemberPasswordCheck). */
  readonly afterMemberPasswordCheck?: (() => Promise<void>) | undefined;
  /** Tests only (RelayOptions.afterEnrollChecks). */
  readonly afterEnrollChecks?: (() => Promise<void>) | undefined;
}

export type DeviceRow = RelayTables['devices'];
export type HostRow = RelayTables['hosts'];

export function deviceView(row: DeviceRow): DeviceView {
  return {
    device_id: row.id,
    name: row.name,
    public_key: row.public_key,
    status: row.status as DeviceView['status'],
    created_at: row.created_at,
    last_seen: row.last_seen,
    endorsed_by: row.endorsed_by,
    revoked_by: row.revoked_by,
    member_email: row.member_email,
  };
}

export function hostPresence(row: HostRow): HostPresence {
  return {
    host_id: row.id,
    name: row.name,
    public_key: row.public_key,
    cert_fingerprint: row.cert_fingerprint,
    enrolled_at: row.enrolled_at,
    online: row.online === 1,
    last_seen: row.last_seen,
    record: row.record_json === null ? null : PresenceRecord.parse(JSON.parse(row.record_json)),
    signature: row.record_signature,
    ...(row.vouches_json === null ? {} : { vouches: z.array(HostStatement).parse(JSON.parse(row.vouches_json)) }),
  };
}
