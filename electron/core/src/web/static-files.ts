import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, normalize, relative, isAbsolute, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/** What a UI door shows when renderer/dist is missing. */
export const MISSING_BUILD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hangar</title></head>
<body><h1>Hangar</h1><p>The user interface is not built yet. Run <code>npm run build</code>, then reload this page.</p></body></html>
`;

/** The answer to a request for one of the UI's files: a regular file inside the root, or why not. */
export type StaticFile =
  | { kind: 'file'; path: string; contentType: string; cacheControl: string }
  | { kind: 'refused'; status: 400 | 404; reason: string }
  | { kind: 'missing-build' };

/**
 * Finds the file a URL path names under `root` (renderer/dist), for both UI doors (web mode's
 * HTTP server and Electron's app:// protocol). Only regular files whose real path is inside the
 * root are served: `..` in any encoding, a symlink that leads out, a NUL byte are refused; a
 * directory or an unknown path gets index.html (the app routes on the client), never a listing.
 */
export async function findStaticFile(root: string, urlPath: string): Promise<StaticFile> {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return { kind: 'refused', status: 400, reason: 'bad URL encoding' };
  }
  if (path.includes('\0')) return { kind: 'refused', status: 404, reason: 'not found' };
  const file = join(root, normalize(path));
  const inside = relative(root, file);
  if (inside.startsWith('..') || isAbsolute(inside)) return { kind: 'refused', status: 404, reason: 'not found' };
  const realRoot = await realpath(root).catch(() => undefined);
  if (realRoot === undefined) return { kind: 'missing-build' };
  const asked = await regularFileIn(realRoot, file);
  if (asked === 'outside') return { kind: 'refused', status: 404, reason: 'not found' };
  const found = asked ?? (await regularFileIn(realRoot, join(root, 'index.html')));
  if (found === undefined || found === 'outside') return { kind: 'missing-build' };
  return {
    kind: 'file',
    path: found,
    contentType: TYPES[extname(found)] ?? 'application/octet-stream',
    // Vite's assets are content-hashed; index.html is not and must be re-read on every launch.
    cacheControl: found.startsWith(join(realRoot, 'assets') + sep) ? 'public, max-age=31536000, immutable' : 'no-store',
  };
}

/** The real path of `file` when it is a regular file inside `realRoot`; 'outside' when a link leads out. */
async function regularFileIn(realRoot: string, file: string): Promise<string | 'outside' | undefined> {
  try {
    const real = await realpath(file);
    const inside = relative(realRoot, real);
    if (inside.startsWith('..') || isAbsolute(inside)) return 'outside';
    return (await stat(real)).isFile() ? real : undefined; // a directory is no file: never listed
  } catch {
    return undefined; // absent or unreadable: treated as not there
  }
}

/** Web mode's door onto findStaticFile. */
export async function serveStatic(root: string, urlPath: string, response: ServerResponse): Promise<void> {
  const found = await findStaticFile(root, urlPath.split('?')[0] ?? '/');
  if (found.kind === 'refused') return send(response, found.status, 'text/plain; charset=utf-8', `${found.reason}\n`);
  if (found.kind === 'missing-build') return send(response, 200, 'text/html; charset=utf-8', MISSING_BUILD_PAGE);
  response.writeHead(200, { 'Content-Type': found.contentType, 'Cache-Control': found.cacheControl });
  createReadStream(found.path)
    .on('error', () => response.destroy())
    .pipe(response);
}

export function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}
