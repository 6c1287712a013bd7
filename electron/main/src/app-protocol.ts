import { net, protocol } from 'electron';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

export const APP_SCHEME = 'app';
export const APP_ORIGIN = `${APP_SCHEME}://hangar`;

/**
 * The window's policy: scripts only from our files (no inline, no eval); inline styles because
 * xterm.js sets them; no network at all, since the core is reached over a MessagePort.
 */
export const ELECTRON_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Must run before app 'ready': gives app:// a real origin, so 'self' and fetch work as on the web. */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
}

/** Serves renderer/dist at app://hangar/ with the CSP as a header (file:// pages get no headers). */
export function serveRenderer(root: string): void {
  protocol.handle(APP_SCHEME, async (request) => {
    const url = new URL(request.url);
    const path = decodeURIComponent(url.pathname);
    let file = join(root, normalize(path === '/' ? '/index.html' : path));
    const inside = relative(root, file);
    if (url.host !== 'hangar' || inside.startsWith('..') || isAbsolute(inside)) {
      return new Response('not found', { status: 404 });
    }
    let response = await net.fetch(pathToFileURL(file).toString()).catch(() => undefined);
    if (!response?.ok) {
      // Client-side routes fall back to the app's page.
      file = join(root, 'index.html');
      response = await net.fetch(pathToFileURL(file).toString());
    }
    const headers = new Headers(response.headers);
    headers.set('Content-Security-Policy', ELECTRON_CSP);
    headers.set('X-Content-Type-Options', 'nosniff');
    return new Response(response.body, { status: response.status, headers });
  });
}

export function isAppUrl(url: string): boolean {
  return url === APP_ORIGIN || url.startsWith(`${APP_ORIGIN}/`);
}
