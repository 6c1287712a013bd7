import { findStaticFile, MISSING_BUILD_PAGE } from '@hangar/desktop/core';
import { readFile } from 'node:fs/promises';

export const APP_SCHEME = 'app';
export const APP_HOST = 'hangar';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

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

export function isAppUrl(url: string): boolean {
  return url === APP_ORIGIN || url.startsWith(`${APP_ORIGIN}/`);
}

/**
 * Answers app://hangar/… from renderer/dist, with the CSP as a header (file:// pages get none).
 * The files are read here through the core's findStaticFile, not handed to Chromium's file://
 * loader, which would list a directory and follow a symlink anywhere.
 */
export function appRequestHandler(root: string): (request: { url: string }) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    if (url.host !== APP_HOST) return plain(404, 'not found');
    const found = await findStaticFile(root, url.pathname);
    if (found.kind === 'refused') return plain(found.status, found.reason);
    if (found.kind === 'missing-build') return page(MISSING_BUILD_PAGE, 'text/html; charset=utf-8', 'no-store');
    return page(await readFile(found.path), found.contentType, found.cacheControl);
  };
}

function page(body: string | Uint8Array<ArrayBuffer>, contentType: string, cacheControl: string): Response {
  return new Response(body, {
    status: 200,
    headers: {
      'Content-Type': contentType,
      'Cache-Control': cacheControl,
      'Content-Security-Policy': ELECTRON_CSP,
      'X-Content-Type-Options': 'nosniff',
    },
  });
}

function plain(status: number, text: string): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
  });
}
