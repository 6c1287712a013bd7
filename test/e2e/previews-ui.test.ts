import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  endAgent,
  pairWith,
  startAgentProcess,
  tempDir,
  type AgentProcess,
  freePort,
} from '../support/processes.js';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  SHOTS,
  startWebUi,
  supervise,
  type ServingCli,
  type Supervised,
} from '../support/serving-cli.js';

/**
 * Previews from the web UI, all real: a stock Vite app (no config) runs its dev server on the
 * "host" (an agent on this machine), the user adds its port as a preview in Debian's Chromium,
 * opens it in a new tab, sees an edit arrive through Vite's HMR WebSocket without a reload, and
 * removes it. Screenshots land in test/e2e/screenshots/.
 */
const VITE_BIN = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
/** What the brief promises for an edit to reach the page; the test fails only past HMR_LIMIT_MS. */
const HMR_TARGET_MS = 1_000;
const HMR_LIMIT_MS = 10_000;

/** The stock Vite starter, reduced: an index.html and a self-accepting module. */
function writeViteApp(dir: string, version: string): void {
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html>\n<html>\n  <body>\n    <div id="app"></div>\n    <script type="module" src="/main.js"></script>\n  </body>\n</html>\n',
  );
  writeMainJs(dir, version);
}

function writeMainJs(dir: string, version: string): void {
  writeFileSync(
    join(dir, 'main.js'),
    `document.querySelector('#app').textContent = '${version}';\nif (import.meta.hot) import.meta.hot.accept();\n`,
  );
}

/** Vite's dev server from the repo's own vite, in a folder with no config (none of the repo's applies). */
async function startVite(appDir: string, port: number): Promise<Supervised> {
  const child = spawn(
    process.execPath,
    [VITE_BIN, '--port', String(port), '--strictPort', '--host', '127.0.0.1', '--clearScreen', 'false'],
    { cwd: appDir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const vite = supervise(child);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`vite exited with ${child.exitCode}: ${vite.output()}`);
    const page = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.text(),
      () => '',
    );
    if (page.includes('/main.js')) return vite;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await vite.stop();
  throw new Error(`vite served nothing on ${port} within 20 s: ${vite.output()}`);
}

/** How a plain TCP connection to 127.0.0.1:port goes: 'connected', or the error code (ECONNREFUSED…). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timed out');
    }, 3_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
  });
}

describe('previews in the web UI, with a real Vite dev server on the host', () => {
  let dir: string;
  let appDir: string;
  let agent: AgentProcess | undefined;
  let ui: ServingCli | undefined;
  let vite: Supervised | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let vitePort: number;
  let preview: Page;
  let previewUrl: URL;
  const sockets: string[] = [];
  const statuses: { url: string; status: number }[] = [];

  beforeAll(async () => {
    dir = tempDir('previews-ui');
    appDir = join(dir, 'app');
    mkdirSync(appDir);
    mkdirSync(SHOTS, { recursive: true });
    writeViteApp(appDir, 'version 1');
    vitePort = await freePort();
    vite = await startVite(appDir, vitePort);
    agent = await startAgentProcess(join(dir, 'agent'));
    const home = join(dir, 'home');
    await pairWith(home, 'mini', agent);
    ui = await startWebUi(home);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Every wait below is bounded; a step that hangs fails in 10 s, not Playwright's 30 s.
    context.setDefaultTimeout(10_000);
    context.on('response', (response) => statuses.push({ url: response.url(), status: response.status() }));
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    await vite?.stop();
    await endAgent(agent, dir);
  });

  it('a dev server listening on the host is offered, and Add preview makes it a preview', async () => {
    await page.goto(ui!.url);
    await page.getByRole('listitem', { name: 'mini, online' }).waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Previews', exact: true }).click();
    const host = page.getByRole('region', { name: 'Previews on mini' });
    await host.getByText('No previews on mini. Start a dev server there, or add a port below.').waitFor();
    const candidate = host.getByRole('button', { name: `Add preview mini:${vitePort}`, exact: true });
    await candidate.waitFor({ timeout: 10_000 });
    // The agent reads who owns the socket: Vite runs as node, shown with its arguments.
    const candidateRow = host.getByRole('listitem').filter({
      has: page.getByRole('button', { name: `Add preview mini:${vitePort}`, exact: true }),
    });
    await expect(candidateRow.textContent()).resolves.toMatch(
      new RegExp(
        `^:${vitePort}node \\S*vite\\.js --port ${vitePort}.* \\(pid ${vite!.child.pid}\\)127\\.0\\.0\\.1Add preview$`,
      ),
    );
    await page.screenshot({ path: join(SHOTS, 'previews-candidates.png') });
    await candidate.click();
    const row = host.getByRole('listitem', { name: `Preview mini:${vitePort}`, exact: true });
    await row.waitFor({ timeout: 10_000 });
    await row.getByText('listening', { exact: true }).waitFor();
    await row.getByText('not served here').waitFor();
    await candidate.waitFor({ state: 'detached' });
  });

  it('Open shows the dev server in a new tab, at a localhost address Vite accepts', async () => {
    [preview] = await Promise.all([
      context.waitForEvent('page', { timeout: 10_000 }),
      page.getByRole('button', { name: `Open preview mini:${vitePort}`, exact: true }).click(),
    ]);
    preview.on('websocket', (socket) => sockets.push(socket.url()));
    await preview.waitForLoadState('load', { timeout: 10_000 });
    previewUrl = new URL(preview.url());
    expect(previewUrl.hostname).toBe('localhost');
    // Vite already holds its port on 127.0.0.1 here (host and computer are one machine): the preview got another.
    expect(Number(previewUrl.port)).not.toBe(vitePort);
    await expect.poll(() => preview.locator('#app').textContent(), { timeout: 10_000 }).toBe('version 1');
    const served = statuses.filter((s) => new URL(s.url).host === previewUrl.host);
    expect(served.find((s) => s.url === previewUrl.href)?.status).toBe(200);
    // Vite answers a Host it does not allow with 403; localhost is allowed by default.
    expect(served.filter((s) => s.status >= 400)).toEqual([]);
    const row = page.getByRole('listitem', { name: `Preview mini:${vitePort}`, exact: true });
    await row.getByRole('link', { name: previewUrl.href }).waitFor({ timeout: 5_000 });
    // mini is this computer: the UI's own port and the preview it serves are not dev servers to add.
    await page.getByRole('button', { name: 'Refresh previews on mini', exact: true }).click();
    const candidates = page.getByRole('list', { name: 'Listening ports on mini', exact: true });
    await candidates.waitFor({ timeout: 10_000 });
    for (const own of [previewUrl.port, new URL(ui!.url).port]) {
      await expect(
        candidates.getByRole('button', { name: `Add preview mini:${own}`, exact: true }).count(),
      ).resolves.toBe(0);
    }
    await page.screenshot({ path: join(SHOTS, 'previews.png') });
  });

  it('an edit on the host reaches the open page through HMR, without a reload', async () => {
    // The HMR WebSocket goes through the preview, not straight to Vite's port on this machine.
    await expect
      .poll(() => sockets, { timeout: 10_000 })
      .toContainEqual(expect.stringMatching(new RegExp(`^ws://localhost:${previewUrl.port}/`)));
    expect(sockets.filter((url) => url.includes(`:${vitePort}`))).toEqual([]);
    await preview.evaluate(() => {
      const marked = window as unknown as { hangarMarker?: string; hangarUpdatedAt?: number };
      marked.hangarMarker = 'still the same page';
      const app = document.querySelector('#app')!;
      new MutationObserver(() => {
        if (app.textContent === 'version 2') marked.hangarUpdatedAt ??= Date.now();
      }).observe(app, { childList: true, characterData: true, subtree: true });
    });
    const editedAt = Date.now();
    writeMainJs(appDir, 'version 2');
    const updatedAt = await preview
      .waitForFunction(() => (window as unknown as { hangarUpdatedAt?: number }).hangarUpdatedAt, null, {
        timeout: HMR_LIMIT_MS,
      })
      .then((handle) => handle.jsonValue() as Promise<number>);
    const elapsed = updatedAt - editedAt;
    console.log(`preview HMR: edit on the host to update on the page in ${elapsed} ms (target ${HMR_TARGET_MS} ms)`);
    expect(elapsed).toBeLessThan(HMR_LIMIT_MS);
    expect(await preview.evaluate(() => (window as unknown as { hangarMarker?: string }).hangarMarker)).toBe(
      'still the same page',
    );
    expect(await preview.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(1);
  });

  it('the palette offers to open the preview, and the view reads well in the dark theme', async () => {
    await page.bringToFront();
    await page.keyboard.press('Control+K');
    await page.locator('[cmdk-input]').fill('preview');
    await page.getByRole('option', { name: `Open preview mini:${vitePort}`, exact: true }).waitFor();
    await page.getByRole('option', { name: 'Show previews', exact: true }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'palette-previews.png') });
    await page.locator('[cmdk-input]').fill('toggle theme');
    await page.getByRole('option', { name: 'Toggle theme', exact: true }).waitFor();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset['theme'])).toBe('dark');
    await page.screenshot({ path: join(SHOTS, 'previews-dark.png') });
  });

  it('Stop serving closes the local address; Open serves it again, edits and all', async () => {
    const row = page.getByRole('listitem', { name: `Preview mini:${vitePort}`, exact: true });
    await row.getByRole('button', { name: `Stop serving preview mini:${vitePort}`, exact: true }).click();
    await row.getByText('not served here').waitFor();
    await expect.poll(() => tryConnect(Number(previewUrl.port)), { timeout: 5_000 }).toBe('ECONNREFUSED');
    // The host keeps the preview: Open serves it again, at whatever local port is free now.
    await preview.close();
    [preview] = await Promise.all([
      context.waitForEvent('page', { timeout: 10_000 }),
      row.getByRole('button', { name: `Open preview mini:${vitePort}`, exact: true }).click(),
    ]);
    await preview.waitForLoadState('load', { timeout: 10_000 });
    previewUrl = new URL(preview.url());
    await expect.poll(() => preview.locator('#app').textContent(), { timeout: 10_000 }).toBe('version 2');
  });

  it("after Remove, the preview's address on this computer refuses connections", async () => {
    // Removing cuts the open connections too: Vite's client sees its HMR WebSocket close.
    await Promise.all([
      preview.waitForEvent('console', {
        predicate: (message) => message.text().includes('[vite] server connection lost'),
        timeout: 10_000,
      }),
      page.getByRole('button', { name: `Remove preview mini:${vitePort}`, exact: true }).click(),
    ]);
    const host = page.getByRole('region', { name: 'Previews on mini' });
    await host.getByRole('listitem', { name: `Preview mini:${vitePort}`, exact: true }).waitFor({
      state: 'detached',
      timeout: 10_000,
    });
    await host.getByText('No previews on mini. Start a dev server there, or add a port below.').waitFor();
    // Back among the candidates, since Vite still listens.
    await host.getByRole('button', { name: `Add preview mini:${vitePort}`, exact: true }).waitFor({ timeout: 10_000 });
    // Removing stops serving here: nothing listens on the local port any more.
    await expect.poll(() => tryConnect(Number(previewUrl.port)), { timeout: 5_000 }).toBe('ECONNREFUSED');
    const reload = await preview.reload({ timeout: 10_000 }).then(
      () => 'loaded',
      (error: Error) => error.message,
    );
    expect(reload).toMatch(/net::ERR_CONNECTION_REFUSED/);
    // Vite itself is untouched.
    expect(await tryConnect(vitePort)).toBe('connected');
  });
});
