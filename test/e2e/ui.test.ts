import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endAgent, hangar, hangarAgent, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { CHROMIUM, CHROMIUM_ARGS, SHOTS, startWebUi, palette, waitForScreen } from '../support/serving-cli.js';
import { TcpProxy } from '../support/tcp-proxy.js';

/**
 * The web UI in Debian's Chromium against `hangar ui`, a real agent and tmux: what a user does
 * with the mouse-free keyboard flow, checked on screen. Screenshots land in test/e2e/screenshots/.
 */
describe('the web UI in a real browser', () => {
  let dir: string;
  let home: string;
  let agent: AgentProcess;
  let proxy: TcpProxy;
  let ui: Awaited<ReturnType<typeof startWebUi>>;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dir = tempDir('ui');
    home = join(dir, 'home');
    mkdirSync(SHOTS, { recursive: true });
    agent = await startAgentProcess(join(dir, 'agent'));
    proxy = await TcpProxy.start(agent.port);
    ui = await startWebUi(home);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    await proxy?.[Symbol.asyncDispose]();
    await endAgent(agent, dir);
  });

  it('a request to /api without the secret, or from a foreign Origin, is refused', async () => {
    const { port } = new URL(ui.url);
    const token = new URL(ui.url).hash.replace('#token=', '');
    // A raw upgrade request: a browser cannot forge Origin, but an attacker's script elsewhere can try any.
    const tryOpen = (query: string, origin: string) => upgrade(Number(port), query, origin);
    expect(await tryOpen('', ui.origin)).toBe(401);
    expect(await tryOpen(`?token=wrong`, ui.origin)).toBe(401);
    expect(await tryOpen(`?token=${token}`, 'http://evil.example')).toBe(403);
    expect(await tryOpen(`?token=${token}`, ui.origin)).toBe(101);
  });

  it('shows what to do with no hosts, then adds and pairs a host from the UI', async () => {
    await page.goto(ui.url);
    await page.getByText('No hosts yet.').waitFor();
    expect(page.url()).not.toContain('token=');
    await page.screenshot({ path: join(SHOTS, 'empty.png') });

    const issued = await hangarAgent(['pair', '--data', agent.dataDir, '--json']);
    const { code } = JSON.parse(issued.stdout) as { code: string };
    await palette(page, 'pair host', 'Pair host…');
    await page.getByLabel('Name').fill('mini');
    await page.getByLabel('Address').fill(proxy.address);
    await page.getByLabel('Pairing code').fill(code);
    await page.screenshot({ path: join(SHOTS, 'add-host.png') });
    await page.keyboard.press('Enter');
    await page.getByRole('listitem', { name: 'mini, online' }).waitFor({ timeout: 20_000 });
    await page.getByRole('listitem', { name: 'mini, online' }).getByText('tmux').first().waitFor();
  });

  it('creates a session from the palette; what is typed into xterm runs', async () => {
    await palette(page, 'new session mini', 'New session on mini');
    await page.locator('section[aria-label="Terminal mini/shell-1"] .xterm-rows').waitFor();
    await page.getByRole('status').filter({ hasText: 'connecting…' }).waitFor({ state: 'detached' });
    await page.locator('section[aria-label="Terminal mini/shell-1"] textarea').focus();
    await page.keyboard.type('echo hel""lo\n');
    await waitForScreen(page, 'mini/shell-1', /^hello\s*$/m);
    await page.screenshot({ path: join(SHOTS, 'terminal.png') });
    // The focused terminal's hidden textarea follows the cursor (where an IME shows its
    // candidates), though xterm's move of it is deferred (renderer/src/components/xterm-textarea.ts).
    const textarea = page.locator('section[aria-label="Terminal mini/shell-1"] textarea');
    const left = async () => Number.parseFloat(await textarea.evaluate((t: HTMLTextAreaElement) => t.style.left));
    const before = await left();
    await page.keyboard.type('abc');
    await waitForScreen(page, 'mini/shell-1', /abc\s*$/m);
    await expect.poll(left).toBeGreaterThan(before);
    await page.keyboard.press('Control+U');
  });

  it('a session started elsewhere shows in the sidebar within moments, and goes when it ends', async () => {
    // Sessions are pushed; the UI's own fallback poll is 30 s, far beyond these waits.
    const made = await hangar(home, ['session', 'new', 'mini', '--name', 'elsewhere', '--', 'sleep', '4']);
    expect(made.code).toBe(0);
    const item = page.getByRole('button', { name: 'Attach to mini/elsewhere' });
    await item.waitFor({ timeout: 3_000 });
    await item.waitFor({ state: 'detached', timeout: 8_000 });
  });

  it('runs a job from the palette and shows its live log and final status', async () => {
    await palette(page, 'printf "line-%s\\n" 1 2 3; sleep 1; echo job-done', /^Run on mini: /);
    await page
      .getByRole('status', { name: 'Job status' })
      .filter({ hasText: 'succeeded' })
      .waitFor({ timeout: 30_000 });
    const log = page.locator('section[aria-label^="Log of"] .xterm-rows');
    await expect.poll(() => log.textContent(), { timeout: 10_000 }).toMatch(/line-3.*job-done/s);
    await page.screenshot({ path: join(SHOTS, 'jobs.png') });
    await page.getByRole('button', { name: 'Terminals' }).click();
  });

  it('after a reload the terminal comes back with the same screen', async () => {
    await page.locator('section[aria-label="Terminal mini/shell-1"] textarea').focus();
    await page.keyboard.type('echo before-reload\n');
    await waitForScreen(page, 'mini/shell-1', /^before-reload\s*$/m);
    await page.reload();
    const text = await waitForScreen(page, 'mini/shell-1', /^before-reload\s*$/m);
    expect(text).toMatch(/^hello\s*$/m);
  });

  it('a dropped link shows "reconnecting…" and the terminal resumes in place', async () => {
    proxy.setRefusing(true);
    proxy.cutAll();
    await page.getByText('reconnecting…').waitFor({ timeout: 20_000 });
    await page.screenshot({ path: join(SHOTS, 'reconnecting.png') });
    proxy.setRefusing(false);
    await page.getByText('reconnecting…').waitFor({ state: 'detached', timeout: 30_000 });
    await page.locator('section[aria-label="Terminal mini/shell-1"] textarea').focus();
    await page.keyboard.type('echo after-drop\n');
    const text = await waitForScreen(page, 'mini/shell-1', /^after-drop\s*$/m);
    expect(text).toMatch(/^before-reload\s*$/m);
    await page.screenshot({ path: join(SHOTS, 'resumed.png') });
  });

  it('the palette lists actions for the keyboard, and the theme toggles to dark', async () => {
    await page.keyboard.press('Control+K');
    await page.locator('[cmdk-input]').fill('on mini');
    await page.screenshot({ path: join(SHOTS, 'palette.png') });
    await page.keyboard.press('Escape');
    await palette(page, 'toggle theme', 'Toggle theme');
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset['theme'])).toBe('dark');
    await page.screenshot({ path: join(SHOTS, 'terminal-dark.png') });
  });

  it('a session that rings its bell is marked in the sidebar until it is opened', async () => {
    const made = await hangar(home, [
      'session',
      'new',
      'mini',
      '--name',
      'asks',
      '--',
      'sh',
      '-c',
      'sleep 1; printf "\\a"; read answer; echo answered; printf "\\a"; sleep 60',
    ]);
    expect(made.code).toBe(0);
    const mark = page.getByRole('status', { name: 'mini/asks rang its bell' });
    await mark.waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(SHOTS, 'bell.png') });
    await page.getByRole('button', { name: /^Attach to mini\/asks/ }).click();
    await mark.waitFor({ state: 'detached' });
    // A bell from the terminal the user is looking at is not marked.
    await page.locator('section[aria-label="Terminal mini/asks"] textarea').focus();
    await page.keyboard.press('Enter');
    await waitForScreen(page, 'mini/asks', /^answered\s*$/m);
    await page.waitForTimeout(1500);
    expect(await mark.count()).toBe(0);
    await hangar(home, ['session', 'kill', 'mini', 'asks']);
  });
});

/** A WebSocket upgrade to /api with the given query and Origin; returns the HTTP status. */
async function upgrade(port: number, query: string, origin: string): Promise<number> {
  const { request } = await import('node:http');
  return new Promise<number>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: `/api${query}`,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        Origin: origin,
        Host: `127.0.0.1:${port}`,
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode ?? 0);
    });
    req.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}
