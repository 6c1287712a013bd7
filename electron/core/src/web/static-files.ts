import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, normalize, relative, isAbsolute } from 'node:path';

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

const MISSING_BUILD = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hangar</title></head>
<body><h1>Hangar</h1><p>The user interface is not built yet. Run <code>npm run build</code>, then reload this page.</p></body></html>
`;

/**
 * Serves files under `root` (renderer/dist). A path that would leave it is not found; unknown
 * paths get index.html (the app routes on the client); a missing build gets a page saying what to run.
 */
export async function serveStatic(root: string, urlPath: string, response: ServerResponse): Promise<void> {
  let path: string;
  try {
    path = decodeURIComponent(urlPath.split('?')[0] ?? '/');
  } catch {
    return send(response, 400, 'text/plain; charset=utf-8', 'bad URL encoding\n');
  }
  const file = join(root, normalize(path));
  const inside = relative(root, file);
  if (inside.startsWith('..') || isAbsolute(inside))
    return send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
  const found = (await isFile(file))
    ? file
    : (await isFile(join(root, 'index.html')))
      ? join(root, 'index.html')
      : undefined;
  if (!found) return send(response, 200, 'text/html; charset=utf-8', MISSING_BUILD);
  response.writeHead(200, {
    'Content-Type': TYPES[extname(found)] ?? 'application/octet-stream',
    // Vite's assets are content-hashed; index.html is not and must be re-read on every launch.
    'Cache-Control': found.includes(`${join(root, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-store',
  });
  createReadStream(found)
    .on('error', () => response.destroy())
    .pipe(response);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false; // absent or unreadable: treated as not there
  }
}

export function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}
