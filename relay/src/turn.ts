import { createHmac } from 'node:crypto';
import type { IceConfig } from '@hangar/shared';

/** Where coturn runs beside the relay, and the static-auth-secret both know (--turn, --turn-secret-file). */
export interface TurnConfig {
  urls: string[];
  secret: string;
  /** How long credentials last (--turn-ttl); TURN_TTL_MS unless set. */
  ttlMs?: number;
}

/**
 * How long TURN credentials last, a device's (fetched before a WebRTC dial) and a host's (renewed
 * at half of it on its socket while it is online). TURN REST cannot revoke a credential: this is
 * how long a removed host or a logged-out device can still allocate on coturn. coturn checks the
 * expiry when an allocation is made, not on its refreshes (coturn issues #774, #1204), so a link
 * that came up keeps running past it; a new ICE session takes the fresh credentials.
 */
export const TURN_TTL_MS = 10 * 60_000;

/**
 * TURN REST API credentials (draft-uberti-behave-turn-rest; coturn's use-auth-secret): the
 * username is the expiry in Unix seconds and who it is for, the credential the base64
 * HMAC-SHA1 of the username under the shared secret. coturn checks both without asking anyone;
 * past the expiry they are refused. The relay never runs TURN traffic itself.
 */
export function turnCredentials(turn: TurnConfig, id: string, now: number): IceConfig {
  const ttlMs = turnTtlMs(turn);
  const expiresAt = now + ttlMs;
  const username = `${Math.floor(expiresAt / 1000)}:${id}`;
  const credential = createHmac('sha1', turn.secret).update(username).digest('base64');
  // The lifetime too: a host or device whose clock is off the relay's counts it from when they came.
  return { urls: turn.urls, username, credential, expires_at: expiresAt, ttl_ms: ttlMs };
}

export function turnTtlMs(turn: TurnConfig): number {
  return turn.ttlMs ?? TURN_TTL_MS;
}
