import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UI_JOINED_FRAMES_PROTOCOL } from '@hangar/shared';
import { removeDir, tempDir } from '../support/processes.js';
import { CHROMIUM, CHROMIUM_ARGS, startWebUi } from '../support/serving-cli.js';

/**
 * The page and `hangar ui` agree on joined frames in Debian's Chromium, which fails a WebSocket
 * whose answer names a subprotocol it did not offer, or none when it offered some.
 */
describe('the web UI agrees on joined frames with its core', () => {
  let dir: string;
  let ui: Awaited<ReturnType<typeof startWebUi>>;
  let browser: Browser;

  beforeAll(async () => {
    dir = tempDir('ui-joined');
    ui = await startWebUi(join(dir, 'home'));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    removeDir(dir);
  });

  it("the page's WebSocket opens with the joined-frames subprotocol, and the page works over it", async () => {
    const page = await browser.newPage();
    // The page's sockets, kept where the test can read their subprotocol.
    await page.addInitScript(() => {
      const sockets: WebSocket[] = [];
      (window as unknown as { sockets: WebSocket[] }).sockets = sockets;
      window.WebSocket = class extends WebSocket {
        constructor(url: string | URL, protocols?: string | string[]) {
          super(url, protocols);
          sockets.push(this);
        }
      };
    });
    await page.goto(ui.url);
    await page.getByText('No hosts yet.').waitFor({ timeout: 20_000 });
    const protocols = await page.evaluate(() =>
      (window as unknown as { sockets: WebSocket[] }).sockets.map((socket) => [socket.protocol, socket.readyState]),
    );
    // 1: OPEN.
    expect(protocols).toEqual([[UI_JOINED_FRAMES_PROTOCOL, 1]]);
  });
});
