import { createHash, randomBytes } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { HangarError } from '@hangar/shared';
import type { RelayDb } from '../store/db.js';

/**
 * Access tokens: JWT (HS256) for 10 minutes, claims {sub: device, acc: account, sid: login, scope}. The
 * HMAC key is made once (migrate/serve) and kept in the database so every replica verifies
 * every other's tokens; it authorizes relay API calls only, never anything on a host.
 * Refresh tokens: 32 random bytes, stored as SHA-256, rotated on every use.
 * `sid` is the login's refresh-token family: once that family is ended (logout, a spent refresh
 * token presented again) the relay refuses the login's access tokens at once (api/routes.ts
 * authenticate) and closes its device sockets (the bus's `session.ended`).
 */
export const ACCESS_TOKEN_TTL_MS = 10 * 60_000;
export const REFRESH_TOKEN_TTL_MS = 30 * 24 * 60 * 60_000;
const ISSUER = 'hangar-relay';
const SCOPE = 'relay';

export interface AccessClaims {
  deviceId: string;
  accountId: string;
  /** The login (refresh-token family) the token was issued for. */
  sessionId: string;
  expiresAt: number;
}

export async function loadAccessKey(db: RelayDb): Promise<Uint8Array> {
  await db
    .insertInto('meta')
    .values({ key: 'access_token_key', value: randomBytes(32).toString('hex') })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await db
    .selectFrom('meta')
    .select('value')
    .where('key', '=', 'access_token_key')
    .executeTakeFirstOrThrow();
  return Buffer.from(row.value, 'hex');
}

export class AccessTokens {
  constructor(
    private readonly key: Uint8Array,
    private readonly now: () => number,
  ) {}

  async issue(accountId: string, deviceId: string, sessionId: string): Promise<{ token: string; expiresAt: number }> {
    const now = this.now();
    const expiresAt = now + ACCESS_TOKEN_TTL_MS;
    const token = await new SignJWT({ acc: accountId, sid: sessionId, scope: SCOPE })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience(ISSUER)
      .setSubject(deviceId)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .sign(this.key);
    return { token, expiresAt: Math.floor(expiresAt / 1000) * 1000 };
  }

  async verify(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        audience: ISSUER,
        algorithms: ['HS256'],
        currentDate: new Date(this.now()),
      });
      if (payload['scope'] !== SCOPE || typeof payload['acc'] !== 'string' || typeof payload.sub !== 'string') {
        throw new HangarError('E_AUTH_REQUIRED', 'the access token is not a relay token; log in again');
      }
      if (typeof payload['sid'] !== 'string') {
        // Issued before tokens named their login: its login cannot be checked, so it is not
        // taken; the client refreshes (which checks the login) as for an expired one.
        throw new HangarError('E_AUTH_EXPIRED', 'the access token names no login; refresh it (auth.refresh) and retry');
      }
      return {
        deviceId: payload.sub,
        accountId: payload['acc'],
        sessionId: payload['sid'],
        expiresAt: (payload.exp ?? 0) * 1000,
      };
    } catch (error) {
      if (error instanceof HangarError) throw error;
      if (error instanceof joseErrors.JWTExpired) {
        throw new HangarError('E_AUTH_EXPIRED', 'the access token expired; refresh it (auth.refresh) and retry');
      }
      throw new HangarError('E_AUTH_REQUIRED', 'the access token is not valid here; log in again');
    }
  }
}

export function newRefreshToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: sha256Hex(token) };
}

export function sha256Hex(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex');
}

export function newId(prefix: 'acct' | 'dev' | 'host' | 'tok' | 'rt' | 'fam'): string {
  return `${prefix}_${randomBytes(16).toString('hex')}`;
}
