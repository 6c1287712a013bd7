import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { HANGAR_BIN, ROOT } from './processes.js';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

export { CHROMIUM, CHROMIUM_ARGS };
/** Screenshots of the UI tests, for a reviewer to look at (gitignored). */
export const SHOTS = join(ROOT, 'test', 'e2e', 'screenshots');

export interface Supervised {
  child: ChildProcess;
  /** Everything it printed so far, both streams, for error messages. */
  output(): string;
  /** Stops it (SIGKILL if it ignores the signal for 5 s) and waits for it to exit. */
  stop(): Promise<void>;
}

export function supervise(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Supervised {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    // A process that ignores the signal for 5 s is killed: a test must not leave it behind.
    const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(forced);
  };
  return { child, output: () => output, stop };
}

export interface ServingCli extends Supervised {
  /** The address it printed (the first capture group of the pattern). */
  url: string;
}

/**
 * Runs a `hangar` command that serves until stopped (`hangar ui`, `hangar preview open`) in its
 * own $HANGAR_HOME, as a user starts it, and resolves once it prints the address it serves.
 */
export async function startServingCli(
  home: string,
  args: string[],
  address: RegExp,
  stopSignal: NodeJS.Signals = 'SIGTERM',
  env: Record<string, string> = {},
): Promise<ServingCli> {
  const child = spawn(process.execPath, [HANGAR_BIN, ...args], {
    env: { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: process.env['HANGAR_LOG_LEVEL'] ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const supervised = supervise(child, stopSignal);
  const what = `hangar ${args.join(' ')}`;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} printed no address in 15 s: ${supervised.output()}`)),
      15_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = address.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${supervised.output()}`));
    });
  });
  return { ...supervised, url };
}

/** `hangar ui` (web mode); `origin` is what its page is served from. */
export async function startWebUi(
  home: string,
  env: Record<string, string> = {},
): Promise<ServingCli & { origin: string }> {
  const ui = await startServingCli(home, ['ui'], /(http:\/\/127\.0\.0\.1:\d+\/#token=\S+)/, 'SIGTERM', env);
  return { ...ui, origin: new URL(ui.url).origin };
}

/**
 * Debian's Chromium on `ui`'s page (1280×800, 10 s for each step), once the host list shows `host`
 * online: what a window test starts from. The caller closes `browser`.
 */
export async function openUiPage(ui: ServingCli, host: string): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  await page.goto(ui.url);
  await page.getByRole('listitem', { name: `${host}, online` }).waitFor({ timeout: 20_000 });
  return { browser, page };
}

/** Runs a command from the palette (Control+K): searches, checks the highlighted match is `option`, presses Enter. */
export async function palette(page: Page, search: string, option: string | RegExp): Promise<void> {
  await page.keyboard.press('Control+K');
  const input = page.locator('[cmdk-input]');
  await input.waitFor();
  await input.fill(search);
  await page.getByRole('option', { name: option }).first().waitFor();
  // Enter runs the highlighted (best) match: check it is the one we mean, then press it.
  await expect(page.locator('[cmdk-item][data-selected="true"]').first().textContent()).resolves.toMatch(option);
  await page.keyboard.press('Enter');
}

/** Text of the visible rows of the terminal pane for host/session (the DOM renderer's rows). */
export async function screenText(page: Page, target: string): Promise<string> {
  return page
    .locator(`section[aria-label="Terminal ${target}"] .xterm-rows`)
    .evaluate((rows) => [...rows.children].map((row) => row.textContent ?? '').join('\n'));
}

export async function waitForScreen(page: Page, target: string, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    text = await screenText(page, target).catch(() => '');
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  throw new Error(`terminal ${target} never showed ${pattern}; it shows:\n${text}`);
}
