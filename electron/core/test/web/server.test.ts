import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  CoreApiClient,
  JOINED_MESSAGE,
  UI_JOINED_FRAMES_PROTOCOL,
  UI_WEBSOCKET_PROTOCOLS,
  wrapWebSocket,
} from '@hangar/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../../../test/support/processes.js';
import { HangarCore } from '../../src/core.js';
import { WebServer } from '../../src/web/server.js';
import { connectUi, connectWs } from '../api/ui-client.js';
import { useCleanups } from '../../../../test/support/cleanups.js';

const quiet = pino({ level: 'silent' });

function get(port: number, path: string, host = `127.0.0.1:${port}`) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { Host: host } }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web mode', () => {
  const cleanup = useCleanups();

  const start = async (staticDir?: string) => {
    const home = tempDir('web');
    cleanup.push(() => removeDir(home));
    const core = await HangarCore.open({ home, logger: quiet });
    cleanup.push(() => core.dispose());
    const web = await WebServer.start({ core, staticDir: staticDir ?? join(home, 'no-build'), logger: quiet });
    cleanup.push(() => web.dispose());
    return { web, home };
  };

  it('prints an address on loopback with a 32-byte secret in the fragment', async () => {
    const { web } = await start();
    expect(web.url).toBe(`http://127.0.0.1:${web.port}/#token=${web.secret}`);
    expect(Buffer.from(web.secret, 'base64url')).toHaveLength(32);
  });

  it('refuses the API without the secret, with a wrong one, from a foreign Origin or Host, and serves nobody', async () => {
    const { web } = await start();
    const port = web.port;
    const own = `http://127.0.0.1:${port}`;
    await expect(connectWs(port, { origin: own })).rejects.toThrow(/401/);
    // One character off (a fixed 'A' would be no change for the 1 in 64 secrets that end in 'A').
    const wrong = web.secret.slice(0, -1) + (web.secret.endsWith('A') ? 'B' : 'A');
    await expect(connectWs(port, { origin: own, token: wrong })).rejects.toThrow(/401/);
    await expect(connectWs(port, { origin: own, token: '' })).rejects.toThrow(/401/);
    await expect(connectWs(port, { origin: 'http://evil.example', token: web.secret })).rejects.toThrow(/403/);
    await expect(connectWs(port, { origin: `http://127.0.0.1:${port + 1}`, token: web.secret })).rejects.toThrow(/403/);
    await expect(connectWs(port, { token: web.secret })).rejects.toThrow(/403/);
    await expect(connectWs(port, { origin: own, token: web.secret, host: `evil.example:${port}` })).rejects.toThrow(
      /403/,
    );
    expect(web.api.connectionCount).toBe(0);

    // localhost is the same machine under its other name: accepted.
    const ui = await connectWs(port, {
      origin: `http://localhost:${port}`,
      token: web.secret,
      host: `localhost:${port}`,
    });
    ui.close();
  });

  it('serves the API to the page that has the secret', async () => {
    const { web } = await start();
    const ui = await connectUi(web.port, web.secret);
    cleanup.push(() => ui.close());
    expect(await ui.call('hosts.list', {})).toEqual({ hosts: [] });
    expect(web.api.connectionCount).toBe(1);
  });

  it('joins frames with a page that offers them, and not with a page that offers nothing (another build)', async () => {
    const { web } = await start();
    const origin = `http://127.0.0.1:${web.port}`;
    const offering = await connectWs(web.port, { token: web.secret, origin, protocols: UI_WEBSOCKET_PROTOCOLS });
    cleanup.push(() => offering.terminate());
    expect(offering.protocol).toBe(UI_JOINED_FRAMES_PROTOCOL);
    // A page from before joined frames: it splits nothing, so every message must be one frame.
    const plain = await connectWs(web.port, { token: web.secret, origin });
    cleanup.push(() => plain.terminate());
    expect(plain.protocol).toBe('');
    const firstBytes: number[] = [];
    plain.on('message', (data: Buffer) => firstBytes.push(data[0]!));
    const api = new CoreApiClient(wrapWebSocket(plain as unknown as Parameters<typeof wrapWebSocket>[0]));
    cleanup.push(() => api.dispose());
    const answers = await Promise.all([api.call('hosts.list', {}), api.call('hosts.list', {})]);
    expect(answers).toEqual([{ hosts: [] }, { hosts: [] }]);
    expect(firstBytes.length).toBeGreaterThan(0);
    expect(firstBytes.filter((kind) => kind === JOINED_MESSAGE)).toEqual([]);
  });

  it('says to build the renderer when it is missing, with a strict CSP', async () => {
    const { web } = await start();
    const page = await get(web.port, '/');
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/npm run build/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${web.port}`);
    expect(csp).toMatch(/script-src 'self';/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
  });

  it('serves the built renderer, never files outside it, and checks Host on every request', async () => {
    const dist = tempDir('dist');
    cleanup.push(() => removeDir(dist));
    mkdirSync(join(dist, 'assets'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><script type="module" src="/assets/app.js"></script>');
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(dist, '..', 'secret.txt'), 'do not serve');
    cleanup.push(() => removeDir(join(dist, '..', 'secret.txt')));
    const { web } = await start(dist);
    expect((await get(web.port, '/')).body).toMatch(/assets\/app.js/);
    const script = await get(web.port, '/assets/app.js');
    expect(script.headers['content-type']).toMatch(/javascript/);
    expect((await get(web.port, '/../secret.txt')).body).not.toMatch(/do not serve/);
    expect((await get(web.port, '/%2e%2e/secret.txt')).body).not.toMatch(/do not serve/);
    expect((await get(web.port, '/hosts/mini')).body).toMatch(/assets\/app.js/);
    expect((await get(web.port, '/', `rebound.example:${web.port}`)).status).toBe(403);
  });
});
