import { mkdirSync, writeFileSync } from 'node:fs';
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
});
