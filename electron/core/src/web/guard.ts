import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A per-launch secret: 32 random bytes, base64url. Whoever has it can use the core API. */
export function newLaunchSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant time whatever the input's length (both sides hashed to 32 bytes first). */
export function secretMatches(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

export type Refusal = { status: 401 | 403; reason: string };

/**
 * DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches us with
 * `Host: evil.example:<port>`. Only our own two spellings of the address are accepted.
 */
export function checkHost(request: IncomingMessage, port: number): Refusal | undefined {
  const host = request.headers.host;
  if (host === `127.0.0.1:${port}` || host === `localhost:${port}`) return undefined;
  return { status: 403, reason: `Host header must be 127.0.0.1:${port} or localhost:${port}` };
}

/**
 * Cross-site WebSocket hijacking: browsers send Origin on every WebSocket handshake and no page
 * can forge it, so only pages we served may open the API. A missing Origin is refused too.
 */
export function checkOrigin(request: IncomingMessage, port: number): Refusal | undefined {
  const origin = request.headers.origin;
  if (origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`) return undefined;
  return { status: 403, reason: 'Origin must be this server (cross-site access refused)' };
}

export function checkToken(request: IncomingMessage, secret: string): Refusal | undefined {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1');
  if (secretMatches(secret, url.searchParams.get('token'))) return undefined;
  return { status: 401, reason: 'missing or wrong token; open the address hangar printed (…/#token=…)' };
}

/**
 * Scripts only from our own files (no inline script, no eval); inline styles are allowed because
 * xterm.js sets them. The API is reached only on this origin's WebSocket.
 */
export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
