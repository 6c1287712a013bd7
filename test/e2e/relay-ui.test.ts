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
 * code), join a team with a pasted invitation in a second window, and see the relay go away and
 * come back. Screenshots: test/e2e/screenshots/relay-*.png.
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

  it('lists the people in the account dialog, and withdraws an invitation and removes a member once confirmed', async () => {
    const invited = await hangar(laptop, ['team', 'invite', 'ana@example.com']);
    expect(invited.code, invited.stderr).toBe(0);
    expect((await hangar(laptop, ['team', 'invite', 'bob@example.com'])).code).toBe(0);
    // Ana joins in her own window (signed out): Sign in…, she has an invitation, and pastes the
    // whole line the owner was given (the relay and email are read from it), choosing a password.
    const anaHome = join(dir, 'ana');
    const line = /^\s*(hangar team join .*)$/m.exec(invited.stdout)![1]!;
    const anaUi = await startWebUi(join(dir, 'ana-first'));
    const anaPage = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await anaPage.goto(anaUi.url);
      await anaPage.getByRole('button', { name: 'Sign in…' }).click();
      await anaPage.getByRole('button', { name: 'I have an invitation to a team' }).click();
      const joining = anaPage.getByRole('dialog', { name: 'Join a team' });
      await joining.getByLabel('Invitation').fill(line);
      expect(await joining.getByLabel('Relay').inputValue()).toBe(relay.url);
      expect(await joining.getByLabel('Email').inputValue()).toBe('ana@example.com');
      await joining.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await joining.getByLabel('Password again').fill(PASSWORD);
      await joining.getByLabel('This computer’s name (optional)').fill('ana-first');
      await anaPage.screenshot({ path: join(SHOTS, 'relay-team-join.png') });
      await joining.getByRole('button', { name: 'Join' }).click();
      await joining.waitFor({ state: 'detached', timeout: 20_000 });
      // Signed in as Ana, waiting for approval: her account dialog shows the code to type on a trusted computer.
      await anaPage.getByRole('button', { name: 'Account ana@example.com' }).click();
      await anaPage.getByText('ana-first, is waiting for approval', { exact: false }).waitFor();
      expect(await anaPage.getByLabel('Approval code').textContent()).toMatch(/^(?:[A-Z2-7]{4}-){7}[A-Z2-7]{4}$/);
    } finally {
      await anaPage.close();
      await anaUi.stop();
    }
    expect((await loginCli(anaHome, relay.url, 'ana@example.com', 'ana-desk')).code).toBe(0);
    // The window asks about each new computer; not the question here.
    const dismissed: string[] = [];
    while (dismissed.length < 2) {
      const asked = page.getByRole('dialog', { name: /^ana-(first|desk) asks to join your account$/ });
      await asked.waitFor({ timeout: 20_000 });
      const name = (await asked.getAttribute('aria-label'))!;
      await asked.getByRole('button', { name: 'Cancel' }).click();
      await page.getByRole('dialog', { name }).waitFor({ state: 'detached' });
      dismissed.push(name);
    }
    await page.getByRole('button', { name: 'Account me@example.com' }).click();
    const people = page.getByRole('region', { name: 'People of the account' });
    await people.getByRole('listitem', { name: 'ana@example.com, member' }).waitFor({ timeout: 20_000 });
    await people.getByRole('listitem', { name: 'bob@example.com, invited' }).waitFor();

    await people.getByRole('button', { name: 'Withdraw bob@example.com…' }).click();
    await people.getByRole('alertdialog', { name: 'Withdraw an invitation' }).waitFor();
    await people.getByRole('button', { name: 'Withdraw bob@example.com', exact: true }).click();
    await people.getByRole('listitem', { name: 'bob@example.com, invited' }).waitFor({ state: 'detached' });

    await people.getByRole('button', { name: 'Remove ana@example.com…' }).click();
    const asking = people.getByRole('alertdialog', { name: 'Remove a member' });
    await asking.getByText(/revokes their devices \(ana-first, ana-desk\)/).waitFor();
    await page.screenshot({ path: join(SHOTS, 'relay-team-remove.png') });
    // Cancelled, nothing changes; confirmed, she is gone and her devices revoked.
    await asking.getByRole('button', { name: 'Cancel' }).click();
    await asking.waitFor({ state: 'detached' });
    await people.getByRole('button', { name: 'Remove ana@example.com…' }).click();
    await people.getByRole('button', { name: 'Remove ana@example.com', exact: true }).click();
    await people.waitFor({ state: 'detached', timeout: 20_000 }); // the owner alone again: no people section
    await page.getByRole('listitem', { name: 'ana-desk, revoked' }).waitFor();
    const team = JSON.parse((await hangar(laptop, ['team', 'ls', '--json'])).stdout) as {
      members: { email: string }[];
      invites: unknown[];
    };
    expect(team).toMatchObject({ members: [{ email: 'me@example.com' }], invites: [] });
    await page.getByRole('button', { name: 'Done' }).click();
    removeDir(anaHome);
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
