import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { endAgent, hangar, removeDir, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { HostShell, PASSWORD, loginCli, startTestRelayProcess } from '../support/relay-stack.js';
import { CHROMIUM, CHROMIUM_ARGS, SHOTS, startWebUi, palette } from '../support/serving-cli.js';

/**
 * The account in the web UI, in Debian's Chromium against `hangar ui`, a real relay process and a
 * real agent: sign up, enroll a host from the dialog (it shows the line and turns green when the
 * host appears), see it in the host list, approve a computer that asks to join (typing its
 * code), and see the relay go away and come back. Screenshots: test/e2e/screenshots/relay-*.png.
 */

describe('the account in the web UI', () => {
  let dir: string;
  let laptop: string;
  let relayData: string;
  let relay: RelayProcess;
  let host: HostShell;
  let agent: AgentProcess;
  let ui: Awaited<ReturnType<typeof startWebUi>>;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dir = tempDir('relay-ui');
    laptop = join(dir, 'laptop');
    relayData = join(dir, 'relay');
    mkdirSync(SHOTS, { recursive: true });
    relay = await startTestRelayProcess(relayData);
    host = new HostShell();
    agent = await startAgentProcess(host.agentData);
    ui = await startWebUi(laptop);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    if (host) await endAgent(agent, host.home);
    await relay?.stop();
    removeDir(dir);
  });

  it('signs up from the UI', async () => {
    await page.goto(ui.url);
    await page.getByText('No hosts yet.').waitFor();
    await palette(page, 'create an account', 'Create an account…');
    await page.getByLabel('Relay').fill(relay.url);
    await page.getByLabel('Email').fill('me@example.com');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Password again').fill(PASSWORD);
    await page.getByLabel('This computer’s name (optional)').fill('laptop');
    await page.screenshot({ path: join(SHOTS, 'relay-signup.png') });
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('button', { name: 'Account me@example.com' }).waitFor({ timeout: 20_000 });
    const shown = JSON.parse((await hangar(laptop, ['account', '--json'])).stdout) as { account: { email: string } };
    expect(shown.account.email).toBe('me@example.com');
  });

  it('enrolls a host from the dialog: it shows the line, and turns green when the host appears', async () => {
    await page.getByRole('button', { name: 'Enroll a host…' }).click();
    await page.getByLabel('Host name').fill('mini');
    await page.getByRole('button', { name: 'Make the line' }).click();
    // A new machine gets the installer's line, served by the relay; this host has the agent already.
    const install = (await page.getByLabel('Line to run on the host').textContent())!.trim();
    expect(install).toMatch(/^curl -fsSL http:\/\/127\.0\.0\.1:\d+\/install\.sh \| sh -s -- --name mini --token hgr1_/);
    await page.getByLabel('hangar-agent is already installed').check();
    const line = (await page.getByLabel('Line to run on the host').textContent())!.trim();
    expect(line).toMatch(/^hangar-agent enroll --data ~\/\.hangar-agent --name mini --token hgr1_/);
    expect(line.split('--token ')[1]).toBe(install.split('--token ')[1]);
    await page.getByText('Waiting for mini to come online…').waitFor();
    await page.screenshot({ path: join(SHOTS, 'relay-enroll-waiting.png') });

    const started = Date.now();
    const ran = await host.run(line);
    expect(ran.code, ran.stderr).toBe(0);
    await page.getByRole('status').filter({ hasText: 'mini is online.' }).waitFor({ timeout: 20_000 });
    console.log(`[relay-ui] enroll line run → the dialog green: ${Date.now() - started} ms`);
    await page.screenshot({ path: join(SHOTS, 'relay-enroll-online.png') });
    await page.getByRole('button', { name: 'Done' }).click();
    // The window's core linked to it as it appeared (the first link, with the line's secret).
    await page.getByRole('listitem', { name: 'mini, online' }).waitFor({ timeout: 20_000 });
    await page.getByRole('listitem', { name: 'mini, online' }).getByText('tmux').first().waitFor();
    await page.screenshot({ path: join(SHOTS, 'relay-host-list.png') });
  });

  it('asks on this trusted computer when a new one signs in, and approves it once the code it shows is typed', async () => {
    const phone = join(dir, 'phone');
    const joined = await loginCli(phone, relay.url, 'me@example.com', 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    const code = /approval code: (\S+)/.exec(joined.stdout)![1]!;

    const prompt = page.getByRole('dialog', { name: 'phone asks to join your account' });
    await prompt.waitFor({ timeout: 20_000 });
    // A code that is not the phone's approves nothing, and says why.
    await prompt.getByLabel('Its approval code').fill('AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH');
    await prompt.getByRole('button', { name: 'Approve phone' }).click();
    await prompt.getByRole('alert').filter({ hasText: 'the relay may have swapped its key' }).waitFor();
    await prompt.getByLabel('Its approval code').fill(code);
    await page.screenshot({ path: join(SHOTS, 'relay-approve-device.png') });
    await prompt.getByRole('button', { name: 'Approve phone' }).click();
    await prompt.waitFor({ state: 'detached' });
    const devices = JSON.parse((await hangar(laptop, ['devices', 'ls', '--json'])).stdout) as {
      name: string;
      status: string;
    }[];
    expect(devices.find((d) => d.name === 'phone')?.status).toBe('endorsed');
    removeDir(phone);
  });

  it('shows the relay going away on account hosts within 5 s, and its return', async () => {
    // A second host of the account that is switched off: the relay's word is all there is of it.
    const vps = new HostShell();
    const vpsAgent = await startAgentProcess(vps.agentData);
    try {
      const line = (await hangar(laptop, ['hosts', 'enroll-token', '--name', 'vps'])).stdout.trim();
      expect((await vps.run(line)).code).toBe(0);
      await page.getByRole('listitem', { name: 'vps, online' }).waitFor({ timeout: 20_000 });
    } finally {
      await endAgent(vpsAgent, vps.home);
    }
    await page.getByRole('listitem', { name: 'vps, offline' }).waitFor({ timeout: 20_000 });

    const port = relay.port;
    await relay.crash();
    const gone = Date.now();
    await page.getByRole('listitem', { name: 'vps, relay unreachable' }).waitFor({ timeout: 5_000 });
    await page.getByRole('listitem', { name: 'mini, online, relay unreachable' }).waitFor({ timeout: 5_000 });
    console.log(`[relay-ui] relay killed → the UI says relay unreachable: ${Date.now() - gone} ms`);
    await page.screenshot({ path: join(SHOTS, 'relay-unreachable.png') });
    relay = await startTestRelayProcess(relayData, port);
    await page.getByRole('listitem', { name: /^mini, online$/ }).waitFor({ timeout: 20_000 });
  });
});
