import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endAgent, hangar, pairWith, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { SHOTS, openUiPage, startWebUi, type ServingCli } from '../support/serving-cli.js';

/**
 * Backups from the window, all real: `hangar ui` in Debian's Chromium, its core, a host agent on
 * this machine and restic. The window goes through the same calls as `hangar backup`.
 */
describe('backups in the web UI, with a real host agent and restic', () => {
  let dir: string;
  let home: string;
  let project: string;
  let agent: AgentProcess | undefined;
  let ui: ServingCli | undefined;
  let browser: Browser | undefined;
  let page: Page;

  beforeAll(async () => {
    dir = tempDir('backups-ui');
    home = join(dir, 'home');
    project = join(dir, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'notes.txt'), 'keep this\n');
    mkdirSync(SHOTS, { recursive: true });
    agent = await startAgentProcess(join(dir, 'agent'));
    await pairWith(home, 'mini', agent);
    const set = await hangar(home, ['backup', 'set', 'mini', '--path', project, '--every', '6h', '--keep-last', '3']);
    if (set.code !== 0) throw new Error(`hangar backup set failed: ${set.stderr}`);
    ui = await startWebUi(home);
    ({ browser, page } = await openUiPage(ui, 'mini'));
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    await endAgent(agent, dir);
  });

  it('shows what the host backs up, backs it up now, and lists the snapshot', async () => {
    await page.getByRole('button', { name: 'Backups' }).click();
    const status = page.getByRole('definition').filter({ hasText: project });
    await status.waitFor();
    await expect(page.getByText('No snapshots yet.').isVisible()).resolves.toBe(true);
    // The schedule in the words `hangar backup set` took and `hangar backup status` prints.
    const schedule = await page.getByRole('definition').filter({ hasText: 'every' }).textContent();
    expect(schedule).toMatch(/^every 6h, keeping last 3, next /);

    await page.getByRole('button', { name: 'Back up now' }).click();
    const outcome = page.getByLabel('Backup outcome');
    await outcome.waitFor({ timeout: 60_000 });
    const text = await outcome.textContent();
    expect(text).toMatch(/^snapshot [0-9a-f]{8,}: 1 files, /);
    const id = /^snapshot ([0-9a-f]{8})/.exec(text!)![1]!;
    await page.getByRole('listitem', { name: `Snapshot ${id}` }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'backups-view.png') });

    // The command line sees the same snapshot.
    const listed = await hangar(home, ['backup', 'ls', 'mini', '--json']);
    expect((JSON.parse(listed.stdout) as { short_id: string }[]).map((s) => s.short_id)).toEqual([id]);
  });

  it('sets what the host backs up in a form (refused fields said under them) and restores a snapshot into a directory', async () => {
    // The previous test left the view on mini with one snapshot.
    const settings = page.getByRole('form', { name: 'Backup settings' });
    await settings.waitFor();
    expect(await settings.getByLabel('Paths on the host (one a line)').inputValue()).toBe(project);
    expect(await settings.getByLabel('Every (empty: on demand only)').inputValue()).toBe('6h');

    // What the core's schema refuses (as `hangar backup set` is refused), under the field it names.
    await settings.getByLabel('Leave out (restic --exclude patterns, one a line)').fill('*.log\ndata[1');
    await settings.getByLabel('Every (empty: on demand only)').fill('1d');
    await settings.getByRole('button', { name: 'Save backup settings' }).click();
    await settings.getByRole('alert').filter({ hasText: 'settings.excludes.1: not a pattern restic takes' }).waitFor();
    const excludesBox = settings.getByLabel('Leave out (restic --exclude patterns, one a line)');
    expect(await excludesBox.getAttribute('aria-invalid')).toBe('true');
    // Nothing changed on the host.
    const unchanged = JSON.parse((await hangar(home, ['backup', 'status', 'mini', '--json'])).stdout) as {
      settings: { every_s: number; excludes?: string[] };
    };
    expect(unchanged.settings.every_s).toBe(6 * 3600);
    expect(unchanged.settings.excludes).toBeUndefined();

    await settings.getByLabel('Every (empty: on demand only)').fill('often');
    await settings.getByRole('button', { name: 'Save backup settings' }).click();
    await settings.getByRole('alert').filter({ hasText: 'expected a number and a unit, like 30m, 6h or 1d' }).waitFor();

    await excludesBox.fill('*.log');
    await settings.getByLabel('Every (empty: on demand only)').fill('1d');
    await settings.getByLabel('last', { exact: true }).fill('5');
    await settings.getByRole('button', { name: 'Save backup settings' }).click();
    await settings
      .getByRole('status')
      .filter({ hasText: `Saved: mini backs up ${project}` })
      .waitFor();
    await page
      .getByRole('definition')
      .filter({ hasText: /^every 1d, keeping last 5, next / })
      .waitFor();
    const status = JSON.parse((await hangar(home, ['backup', 'status', 'mini', '--json'])).stdout) as {
      settings: { every_s: number; keep: object; excludes?: string[] };
    };
    expect(status.settings).toMatchObject({ every_s: 86400, keep: { last: 5 }, excludes: ['*.log'] });

    // Restore: a relative place is refused under the field; a new directory gets the files.
    const restore = page.getByRole('form', { name: 'Restore a snapshot' });
    await restore.getByLabel('Into (a new or empty directory on the host)').fill('restored');
    await restore.getByRole('button', { name: 'Restore' }).click();
    await restore.getByRole('alert').filter({ hasText: 'to: expected an absolute path on the host' }).waitFor();
    const to = join(dir, 'restored');
    await restore.getByLabel('Into (a new or empty directory on the host)').fill(to);
    await restore.getByRole('button', { name: 'Restore' }).click();
    const outcome = page.getByLabel('Restore outcome');
    await outcome.waitFor({ timeout: 60_000 });
    expect(await outcome.textContent()).toMatch(new RegExp(`^restored latest into ${to}: 1 files, `));
    expect(readFileSync(join(to, project, 'notes.txt'), 'utf8')).toBe('keep this\n');
    await page.screenshot({ path: join(SHOTS, 'backups-view-forms.png') });
  });
});
