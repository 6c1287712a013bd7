import {
  HangarError,
  LOGIN_PROOF_WINDOW_MS,
  loginProofBytes,
  verifyHex,
  type RelayMethod,
  type RelayResult,
  RELAY_PROCEDURES,
} from '@hangar/shared';
import type { z } from 'zod';
import type { DeviceRow, RelayContext } from '../context.js';
import type { AuditContext } from '../ops/audit.js';

/** One HTTP call as a handler sees it: who (if signed in), from where, under which request id. */
export interface Call {
  ip: string;
  requestId: string;
  /** The origin proofs must name: --public-url's, else this request's. */
  origin: string;
  device: DeviceRow | undefined;
  /** The login (refresh-token family) of the access token, beside `device`. */
  sessionId: string | undefined;
}

export type Params<M extends RelayMethod> = z.output<(typeof RELAY_PROCEDURES)[M]['params']>;
export type Handler<M extends RelayMethod> = (
  ctx: RelayContext,
  params: Params<M>,
  call: Call,
) => Promise<RelayResult<M>>;
export type Handlers = { [M in RelayMethod]: Handler<M> };

/** The signed-in device of a 'device' or 'any_device' procedure (the router guarantees it). */
export function signedIn(call: Call): DeviceRow {
  if (call.device === undefined) throw new HangarError('E_AUTH_REQUIRED', 'log in to the relay first');
  return call.device;
}

/**
 * The account trusts a device, by the relay's record, when it is the first one or a trusted device
 * endorsed it. A device that only knows the password stays pending until then: it sees its own
 * pending state and nothing of the account (hosts, devices, presence, addresses, billing). This is
 * the one rule; the procedure table's `auth` (RELAY_PROCEDURES), the device socket, signaling and
 * splices all ask it here.
 */
export function isTrusted(device: Pick<DeviceRow, 'status'>): boolean {
  return device.status === 'first' || device.status === 'endorsed';
}

/** E_FORBIDDEN naming what to do, for `what` asked by a device the account does not trust yet. */
export function requireTrusted<D extends Pick<DeviceRow, 'status' | 'name'>>(device: D, what: string): D {
  if (isTrusted(device)) return device;
  throw new HangarError(
    'E_FORBIDDEN',
    `${what} needs a device the account trusts; this device ("${device.name}") is not approved on its account yet: ` +
      `approve this device from a trusted one: hangar devices approve "${device.name}"`,
  );
}

export function auditContext(call: Call, accountId: string | null, actor?: string): AuditContext {
  return {
    accountId,
    actor: actor ?? (call.device ? `device:${call.device.id}` : 'anonymous'),
    ip: call.ip,
    requestId: call.requestId,
  };
}

/** Checks a login proof: right origin and identity, fresh, signed by the device key. */
export function checkLoginProof(
  ctx: RelayContext,
  call: Call,
  f: { identity: string; publicKey: string; proof: { issued_at: number; signature: string } },
): void {
  const skew = Math.abs(ctx.now() - f.proof.issued_at);
  if (skew > LOGIN_PROOF_WINDOW_MS) {
    throw new HangarError(
      'E_AUTH_BAD_SIGNATURE',
      `proof.issued_at is ${Math.round(skew / 1000)} s away from the relay's clock (at most 300 s allowed); check this computer's clock`,
    );
  }
  const bytes = loginProofBytes({
    relayOrigin: call.origin,
    identity: f.identity,
    publicKey: f.publicKey,
    issuedAt: f.proof.issued_at,
  });
  if (!verifyHex(f.publicKey, bytes, f.proof.signature)) {
    throw new HangarError(
      'E_AUTH_BAD_SIGNATURE',
      `proof.signature does not verify with device.public_key for ${call.origin}; sign loginProofBytes with the relay's origin as the client reached it`,
    );
  }
}

/** A unique constraint said no (SQLite or PostgreSQL): a race lost to another request. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
