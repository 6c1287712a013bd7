import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { hangarIn, reportMinutes, trialAccountWithHost } from '../support/billing-stack.js';
import { useCleanups } from '../support/cleanups.js';
import { CHROMIUM, CHROMIUM_ARGS, SHOTS, startWebUi } from '../support/serving-cli.js';

/**
 * The Account page in Debian's Chromium against `hangar ui`, a relay with billing on (in this
 * process: its clock moves the trial along; Stripe is the stand-in) and a real enrolled agent:
 * the plan, trial, minutes and invoice facts, the minutes-per-day chart, the banners (trial ending,
 * 80 % of the minutes, jobs refused), Upgrade opening the stand-in's Checkout page, and once paid,
 * Pro with Manage billing opening the customer portal.
 * Screenshots: test/e2e/screenshots/billing-account*.png.
 */

const cleanups = useCleanups();

const DAY = 24 * 60 * 60_000;

async function showAccount(page: Page): Promise<void> {
  // Mounting the page asks the core again (it also refreshes every minute by itself).
  await page.getByRole('button', { name: 'Terminals' }).click();
  await page.getByRole('button', { name: 'Account', exact: true }).click();
  await page.getByRole('region', { name: 'Account' }).getByTestId('plan').waitFor();
}

describe('the Account page', { timeout: 180_000 }, () => {
  it('shows the plan, minutes per day, and banners for the trial ending, 80 % used and refused jobs; Upgrade opens Checkout', async () => {
    const { billing, laptop, project, host, hostId } = await trialAccountWithHost(cleanups);
    const job = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'true']);
    expect(job.code, job.stderr).toBe(0);

    mkdirSync(SHOTS, { recursive: true });
    const ui = await startWebUi(laptop);
    cleanups.push(() => ui.stop());
    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    cleanups.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.goto(ui.url);
    await page.getByRole('button', { name: 'Account', exact: true }).click();
    const account = page.getByRole('region', { name: 'Account' });
    await account.getByTestId('plan').filter({ hasText: 'Trial (7 days of Pro)' }).waitFor({ timeout: 20_000 });
    await expect(account.getByTestId('trial').textContent()).resolves.toMatch(/^7 days left \(ends /);
    await expect(account.getByTestId('next-invoice').textContent()).resolves.toBe('none');
    await account
      .getByTestId('minutes')
      .filter({ hasText: /^[12] used of 300 included/ })
      .waitFor({ timeout: 20_000 });
    expect(await account.getByRole('alert').count()).toBe(0);

    // Three days of builds, five days into the trial: 2 days left and over 80 % of the minutes.
    await reportMinutes(billing, host, hostId, 60);
    billing.clock.advance(DAY);
    await reportMinutes(billing, host, hostId, 110);
    billing.clock.advance(DAY);
    await reportMinutes(billing, host, hostId, 75);
    billing.clock.advance(3 * DAY);
    await showAccount(page);
    await account.getByText(/^Your trial ends in 2 days/).waitFor();
    await account.getByText(/^2\d\d of 300 included build minutes used \(8\d %\)/).waitFor();
    await expect(account.getByTestId('trial').textContent()).resolves.toMatch(/^2 days left/);
    const chart = account.getByRole('img', { name: /^Build minutes per day: / });
    const described = await chart.getAttribute('aria-label');
    expect(described).toMatch(/ 6\d(, | |$)/); // the first day: 60 reported + the real job's minutes
    expect(described).toContain(' 110, ');
    expect(described).toMatch(/ 75$/);
    expect(await account.locator('.minutes-chart canvas').count()).toBe(1);
    await page.screenshot({ path: join(SHOTS, 'billing-account.png') });

    // The rest of the trial's minutes: the relay refuses build jobs, the page says so.
    const used = Number(/^(\d+) used/.exec((await account.getByTestId('minutes').textContent())!)![1]);
    await reportMinutes(billing, host, hostId, 300 - used);
    await showAccount(page);
    await account.getByText(/^Build jobs are being refused: this period's build minutes are used up/).waitFor();
    await page.screenshot({ path: join(SHOTS, 'billing-account-refusing.png') });

    // Upgrade: the core asks the relay for a Checkout session; the page opens it in a new tab.
    const [checkout] = await Promise.all([
      page.waitForEvent('popup'),
      account.getByRole('button', { name: 'Upgrade to Pro ($20/month)' }).click(),
    ]);
    expect(checkout.url().startsWith(new URL(billing.standIn.url).origin)).toBe(true);
    expect(billing.standIn.sessionOf(checkout.url())).toBeDefined();

    // Paid there: the page shows Pro, no banner, and Manage billing opens Stripe's portal.
    await billing.standIn.completeCheckout(checkout.url());
    await showAccount(page);
    await account.getByTestId('plan').filter({ hasText: /^Pro$/ }).waitFor();
    await expect(account.getByTestId('next-invoice').textContent()).resolves.not.toBe('none');
    // Upgraded two days before the trial's end: it did not "end", the subscription took over.
    await expect(account.getByTestId('trial').textContent()).resolves.not.toMatch(/ended$/);
    expect(await account.getByRole('alert').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'billing-account-pro.png') });
    const [portal] = await Promise.all([
      page.waitForEvent('popup'),
      account.getByRole('button', { name: 'Manage billing' }).click(),
    ]);
    expect(portal.url().startsWith(new URL(billing.standIn.url).origin)).toBe(true);
  });
});
