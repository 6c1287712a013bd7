import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  endAgent,
  hangar,
  pairWith,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';
import { SHOTS, openUiPage, palette, startWebUi, waitForScreen, type ServingCli } from '../support/serving-cli.js';

/**
 * Agent tasks from the window, all real: `hangar ui` in Debian's Chromium, its core, a host agent
 * on this machine and tmux; the coding agent is test/fixtures/claude, a stand-in for Claude Code
 * that keeps its hooks (a prompt that mentions bash makes it ask for permission first).
 * Screenshots land in test/e2e/screenshots/.
 */
const STAND_IN_DIR = join(ROOT, 'test', 'fixtures', 'claude');
const ASKS = 'please run bash on the tests';

describe('agent tasks in the web UI, with the Claude stand-in on a real host agent', () => {
  let dir: string;
  let home: string;
  let workspace: string;
  let agent: AgentProcess | undefined;
  let ui: ServingCli | undefined;
  let browser: Browser | undefined;
  let page: Page;

  /** The row of the task whose prompt starts with `prompt` (the newest first). */
  const row = (prompt: string) => page.getByRole('listitem', { name: `Task ${prompt}`, exact: true }).first();
  const status = () => page.getByRole('status', { name: 'Task status' });
  // A label that wraps a textbox names it with what is typed in it too ("Prompt please run…").
  const promptBox = () => page.getByRole('textbox', { name: /^Prompt/ });

  beforeAll(async () => {
    dir = tempDir('tasks-ui');
    home = join(dir, 'home');
    workspace = join(dir, 'work');
    mkdirSync(workspace);
    mkdirSync(join(dir, 'claude-home', '.claude'), { recursive: true });
    mkdirSync(SHOTS, { recursive: true });
    agent = await startAgentProcess(join(dir, 'agent'), {
      // `claude` is found on the agent's PATH, as on a real host; its HOME is the test's.
      env: { PATH: `${STAND_IN_DIR}:${process.env['PATH']}`, HOME: join(dir, 'claude-home') },
    });
    await pairWith(home, 'mini', agent);
    ui = await startWebUi(home);
    ({ browser, page } = await openUiPage(ui, 'mini'));
  });

  afterAll(async () => {
    await browser?.close();
    await ui?.stop();
    await endAgent(agent, dir);
  });

  it('a task from the form is claimed, works, asks in Claude’s words, and its terminal answers it', async () => {
    await palette(page, 'new task', 'New task…');
    // The palette leaves the prompt focused (once the view has loaded): the user types straight away.
    await expect.poll(() => promptBox().evaluate((box) => box === document.activeElement)).toBe(true);
    await page.keyboard.type(`${ASKS}\nand say what you ran`);
    await expect(promptBox().inputValue()).resolves.toBe(`${ASKS}\nand say what you ran`);
    await page.getByLabel('Needs (optional)').fill('claude');
    await page.getByLabel('Working directory (optional)').fill(workspace);
    // Every state the row shows, in order, as the user would have seen it.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { taskStates: string[] }).taskStates = seen;
      new MutationObserver(() => {
        const state = document.querySelector('[aria-label="Tasks"] li .job-state')?.textContent ?? '';
        if (state && seen.at(-1) !== state) seen.push(state);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByRole('button', { name: 'Queue task' }).click();

    const task = row(ASKS);
    await task.getByText('needs you', { exact: true }).waitFor({ timeout: 20_000 });
    await task.getByText('Claude needs your permission to use Bash', { exact: true }).waitFor();
    await expect(task.textContent()).resolves.toContain('mini · just now');
    const states = await page.evaluate(() => (window as unknown as { taskStates: string[] }).taskStates);
    expect(states.at(-1)).toBe('needs you');
    // Nothing the row showed went backwards (queued or starting, then working, then needs you). The
    // host follows the agent by its session listings, which can fold the stand-in's brief working
    // (its prompt asks at once) into needs you: working is allowed, not required.
    const order = ['queued', 'starting', 'working', 'needs you'];
    expect(states.map((s) => order.indexOf(s))).toEqual(states.map((s) => order.indexOf(s)).sort());

    await task.getByRole('button').click();
    await expect(status().textContent()).resolves.toBe('needs you');
    await expect(page.getByLabel('Task prompt').textContent()).resolves.toBe(`${ASKS}\nand say what you ran`);
    await page.screenshot({ path: join(SHOTS, 'tasks.png') });

    await page.getByRole('button', { name: 'Open terminal' }).click();
    const pane = page.locator('section[aria-label^="Terminal mini/task-"]');
    await pane.waitFor();
    const target = (await pane.getAttribute('aria-label'))!.replace('Terminal ', '');
    await waitForScreen(page, target, /Allow Bash to run/);
    await page.screenshot({ path: join(SHOTS, 'task-terminal.png') });
    await page.locator(`section[aria-label="Terminal ${target}"] textarea`).focus();
    await page.keyboard.type('y\r');
    await waitForScreen(page, target, /Done\./);

    await page.getByRole('button', { name: 'Tasks', exact: true }).click();
    await status()
      .filter({ hasText: /^completed/ })
      .waitFor({ timeout: 15_000 });
    await expect(row(ASKS).getByText('completed', { exact: true }).count()).resolves.toBe(1);
  });

  it('a bad field is named under it, in the words of the schema the core checks with', async () => {
    const before = await page.getByRole('list', { name: 'Tasks' }).getByRole('listitem').count();
    await promptBox().fill('fix the parser');
    const cwd = page.getByLabel('Working directory (optional)');
    await cwd.fill('src/app');
    await page.getByRole('button', { name: 'Queue task' }).click();
    const message = 'expected an absolute directory on the host, or one starting with ~/';
    await page
      .getByRole('alert')
      .filter({ hasText: `spec.cwd: ${message}` })
      .waitFor();
    await expect(cwd.getAttribute('aria-invalid')).resolves.toBe('true');
    const describedBy = (await cwd.getAttribute('aria-describedby'))!;
    await expect(page.locator(`[id="${describedBy}"]`).textContent()).resolves.toBe(message);
    await expect(page.getByLabel('Needs (optional)').getAttribute('aria-invalid')).resolves.toBeNull();
    await page.screenshot({ path: join(SHOTS, 'task-bad-field.png') });
    // Nothing was queued; fixing the field clears the mark.
    await expect(page.getByRole('list', { name: 'Tasks' }).getByRole('listitem').count()).resolves.toBe(before);
    await cwd.fill('');
    await page.getByLabel('Needs (optional)').fill('label:no-such-gpu');
    await page.getByRole('button', { name: 'Queue task' }).click();
    await row('fix the parser').waitFor();
    await expect(cwd.getAttribute('aria-invalid')).resolves.toBeNull();
  });

  it('a task no host fits stays queued with the reason, and is cancelled after a confirmation', async () => {
    const task = row('fix the parser');
    await task.getByText('queued', { exact: true }).waitFor();
    // The core's reason names the host and the need it lacks.
    await expect
      .poll(() => task.textContent(), { timeout: 10_000 })
      .toMatch(/queue · just now.*mini.*label:no-such-gpu/s);
    await task.getByRole('button').click();
    await page.getByRole('button', { name: 'Cancel task…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this task?' });
    await dialog.getByText("It leaves this computer's queue; no host has started it.").waitFor();
    // Keeping it is the default: Escape (or Keep it) leaves the task as it was.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await expect(status().textContent()).resolves.toBe('queued');
    await page.getByRole('button', { name: 'Cancel task…' }).click();
    await dialog.getByRole('button', { name: 'Cancel task', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await status().filter({ hasText: 'cancelled' }).waitFor();
    await expect(page.getByRole('button', { name: 'Cancel task…' }).count()).resolves.toBe(0);
  });

  it('a running task is opened and cancelled from the palette: its session on the host ends', async () => {
    const prompt = `${ASKS} again`;
    await page.getByRole('button', { name: 'Tasks', exact: true }).click();
    await promptBox().fill(prompt);
    await page.getByLabel('Needs (optional)').fill('');
    await page.getByRole('button', { name: 'Queue task' }).click();
    await row(prompt).getByText('needs you', { exact: true }).waitFor({ timeout: 20_000 });
    const session = (await status().locator('..').textContent())!.match(/session (task-[0-9a-f]{8})/)?.[1];
    expect(session).toMatch(/^task-/);
    const sessions = async () => (await hangar(home, ['session', 'ls', 'mini'])).stdout;
    await expect(sessions()).resolves.toContain(session);

    // The palette opens its terminal too, where the agent's question waits.
    await palette(
      page,
      `open task's terminal ${prompt}`,
      /^Open task's terminal: please run bash on the tests again \(mini · t-/,
    );
    await waitForScreen(page, `mini/${session}`, /Allow Bash to run/);
    await page.getByRole('button', { name: 'Tasks', exact: true }).click();

    await palette(page, `cancel task ${prompt}`, /^Cancel task: please run bash on the tests again \(mini · t-/);
    const dialog = page.getByRole('dialog', { name: 'Cancel this task?' });
    await dialog.getByText(`The agent's session on mini (${session}) is ended`, { exact: false }).waitFor();
    await dialog.getByRole('button', { name: 'Cancel task', exact: true }).click();
    await row(prompt).getByText('cancelled', { exact: true }).waitFor({ timeout: 15_000 });
    await expect.poll(sessions, { timeout: 10_000 }).not.toContain(session);
  });

  it('a task with a repository (and ref) works on a branch of its own, which its row and detail show', async () => {
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]);
    git('init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'README'), 'main\n');
    git('add', 'README');
    git('commit', '-q', '-m', 'main');

    await page.getByRole('button', { name: 'Tasks', exact: true }).click();
    const prompt = 'add a changelog';
    await promptBox().fill(prompt);
    const cwd = page.getByLabel('Working directory (optional)');
    const repository = page.getByLabel('Repository (optional)');
    // With a working directory too, the repository is marked in the schema's words.
    await cwd.fill(workspace);
    await repository.fill(repo);
    await page.getByLabel('Ref (optional)').fill('main');
    await page.getByRole('button', { name: 'Queue task' }).click();
    await page.getByRole('alert').filter({ hasText: 'spec.repo: give cwd or repo, not both' }).waitFor();
    await expect(repository.getAttribute('aria-invalid')).resolves.toBe('true');

    await cwd.fill('');
    await page.getByRole('button', { name: 'Queue task' }).click();
    const task = row(prompt);
    await task.getByText('completed', { exact: true }).waitFor({ timeout: 20_000 });
    const branch = (await task.textContent())!.match(/hangar\/task-[0-9a-f]{8}/)?.[0];
    expect(branch).toMatch(/^hangar\/task-[0-9a-f]{8}$/);
    await task.getByRole('button').click();
    await expect
      .poll(() => page.locator('dl.task-spec').textContent())
      .toMatch(
        new RegExp(`Repository${repo} at mainWorking directory.*/tasks/t-[0-9a-f]{16}/work \\(branch ${branch}\\)`),
      );
    // The branch is the repository's, from main.
    expect(git('branch', '--list', 'hangar/*', '--format=%(refname:short)').toString()).toBe(`${branch}\n`);
    await page.screenshot({ path: join(SHOTS, 'task-repo.png') });
  });
});
