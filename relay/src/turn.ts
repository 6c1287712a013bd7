import { createHmac } from 'node:crypto';
import type { IceConfig } from '@hangar/shared';

/** Where coturn runs beside the relay, and the static-auth-secret both know (--turn, --turn-secret-file). */
export interface TurnConfig {
  urls: string[];
  secret: string;
}

/** How long a device's TURN credentials last (fetched before each WebRTC dial). */
export const DEVICE_TURN_TTL_MS = 60 * 60_000;
/** A host's last this long and are renewed at half of it on its socket. */
export const HOST_TURN_TTL_MS = 6 * 60 * 60_000;

/**
 * TURN REST API credentials (draft-uberti-behave-turn-rest; coturn's use-auth-secret): the
 * username is the expiry in Unix seconds and who it is for, the credential the base64
 * HMAC-SHA1 of the username under the shared secret. coturn checks both without asking anyone;
 * past the expiry they are refused. The relay never runs TURN traffic itself.
 */
export function turnCredentials(turn: TurnConfig, id: string, now: number, ttlMs: number): IceConfig {
  const expiresAt = now + ttlMs;
  const username = `${Math.floor(expiresAt / 1000)}:${id}`;
  const credential = createHmac('sha1', turn.secret).update(username).digest('base64');
  return { urls: turn.urls, username, credential, expires_at: expiresAt };
}
