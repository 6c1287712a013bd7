import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ELECTRON_CSP, appRequestHandler } from '../../electron/main/src/app-requests.js';
import { removeDir, tempDir } from '../support/processes.js';

/**
 * The window's pages come from app://hangar/, answered by electron/main's protocol handler. The
 * Electron binary cannot run here: the handler is called as protocol.handle calls it, with a
 * request (a stand-in carrying the URL Chromium passes), and its Response is read.
 */
describe('the app:// protocol serves the renderer’s files and nothing else', () => {
  const INDEX = '<!doctype html><title>Hangar index</title>';
  const APP_JS = 'console.log("app")';
  const SECRET = 'a file beside renderer/dist';
  let dir: string;
  let handle: (request: { url: string }) => Promise<Response>;

  beforeAll(() => {
    dir = tempDir('app-protocol');
    const dist = join(dir, 'dist');
    mkdirSync(join(dist, 'assets', 'nested'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), INDEX);
    writeFileSync(join(dist, 'assets', 'app.js'), APP_JS);
    writeFileSync(join(dir, 'secret.txt'), SECRET);
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'outside', 'key.pem'), SECRET);
    symlinkSync(join(dir, 'secret.txt'), join(dist, 'escape.txt'));
    symlinkSync(join(dir, 'outside'), join(dist, 'escape-dir'));
    symlinkSync(join(dist, 'assets', 'app.js'), join(dist, 'alias.js'));
    handle = appRequestHandler(dist);
  });
  afterAll(() => removeDir(dir));

  const get = async (url: string) => {
    const response = await handle({ url });
    return { status: response.status, headers: response.headers, body: await response.text() };
  };

  it('serves the app’s page and its assets with the window’s CSP', async () => {
    const page = await get('app://hangar/');
    expect(page).toMatchObject({ status: 200, body: INDEX });
    expect(page.headers.get('content-security-policy')).toBe(ELECTRON_CSP);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const script = await get('app://hangar/assets/app.js');
    expect(script).toMatchObject({ status: 200, body: APP_JS });
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    // A link that stays inside the folder is an ordinary file.
    expect(await get('app://hangar/alias.js')).toMatchObject({ status: 200, body: APP_JS });
  });

  it('a client-side route gets the app’s page', async () => {
    expect(await get('app://hangar/jobs/123')).toMatchObject({ status: 200, body: INDEX });
  });

  it.each(['app://hangar/assets', 'app://hangar/assets/', 'app://hangar/assets/nested/', 'app://hangar/.'])(
    'a directory (%s) is never listed',
    async (url) => {
      const response = await get(url);
      expect(response.body).not.toMatch(/app\.js|nested/);
      expect(response.body).toBe(INDEX);
    },
  );

  it.each([
    'app://hangar/../secret.txt',
    'app://hangar/..%2fsecret.txt',
    'app://hangar/%2e%2e/secret.txt',
    'app://hangar/%2E%2E%2Fsecret.txt',
    'app://hangar/assets/..%2f..%2fsecret.txt',
    'app://hangar/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    'app://hangar/%252e%252e/secret.txt',
    'app://hangar/..%5csecret.txt',
    'app://hangar/escape.txt',
    'app://hangar/escape-dir/key.pem',
    'app://hangar/escape-dir/',
  ])('nothing outside the folder is served: %s', async (url) => {
    const response = await get(url);
    expect(response.body).not.toContain(SECRET);
    expect(response.body).not.toContain('key.pem');
  });

  it('a link out of the folder is not found, not followed', async () => {
    expect((await get('app://hangar/escape.txt')).status).toBe(404);
    expect((await get('app://hangar/escape-dir/key.pem')).status).toBe(404);
  });

  it('another host, a NUL byte or a broken encoding is refused', async () => {
    expect((await get('app://evil/index.html')).status).toBe(404);
    expect((await get('app://hangar/index.html%00.js')).status).toBe(404);
    expect((await get('app://hangar/%E0%A4%A')).status).toBe(400);
  });
});
