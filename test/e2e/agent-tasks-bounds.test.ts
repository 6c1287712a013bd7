import {
  MAX_PROMPT_BYTES,
  TASK_LIST_BUDGET_BYTES,
  isHangarError,
  taskSessionName,
  type TaskInfo,
} from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/index.js';
import { usePairedHost } from '../support/paired-host.js';
import { ROOT, hangar, hangarFrom, removeDir, tempDir } from '../support/processes.js';
import { until } from '../support/until.js';

/**
 * Agent tasks at their edges, through the hangar command: a reason longer than a task may carry,
 * and a --cwd the shell expanded with this computer's home.
 */
const agentHome = tempDir('task-agent-home');
const cliHome = tempDir('task-cli-home');
afterAll(() => {
  removeDir(agentHome);
  removeDir(cliHome);
});

const show = async (home: string, id: string): Promise<TaskInfo> => {
  const shown = await hangar(home, ['task', 'show', id, '--json']);
  expect(shown.code, shown.stderr).toBe(0);
  return JSON.parse(shown.stdout) as TaskInfo;
};

describe('agent tasks at their edges', () => {
  const box = usePairedHost({ agent: { env: { HOME: agentHome } } });

  it('a task no host fits for many reasons stays queued with a reason cut to what a task carries, and is listed', async () => {
    // 32 labels the host lacks: the host names each, at about 150 characters apiece.
    const needs = Array.from({ length: 32 }, (_, i) => `label:${String(i).padStart(2, '0')}${'x'.repeat(46)}`);
    const added = await hangar(box.home, ['task', 'add', 'go', '--needs', needs.join(','), '--json']);
    expect(added.code, added.stderr).toBe(0);
    const task = JSON.parse(added.stdout) as TaskInfo;
    expect(task.state).toBe('queued');
    expect(task.reason).toMatch(/^no host can take it now: box: does not fit: .*it needs label:00x+ and/);
    expect(task.reason!.length).toBeLessThanOrEqual(4096);
    expect(task.reason!.endsWith('…')).toBe(true);

    const listed = await hangar(box.home, ['task', 'ls', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { queued: TaskInfo[] }).queued.map((t) => t.id)).toEqual([task.id]);
  });

  it('--cwd under this computer’s home (as the shell expands ~/…) is the host user’s home there', async () => {
    // The host's home has proj; this computer's home (another here) does not.
    mkdirSync(join(agentHome, 'proj'));
    const out = join(agentHome, 'where');
    const added = await hangarFrom(
      box.home,
      ['task', 'add', 'where', '--json', '--cwd', join(cliHome, 'proj'), '--', 'sh', '-c', `pwd > ${out}`],
      { cwd: cliHome, env: { HOME: cliHome } },
    );
    expect(added.code, added.stderr).toBe(0);
    const task = JSON.parse(added.stdout) as TaskInfo;
    expect(task).toMatchObject({ host: 'box', spec: { cwd: '~/proj' } });
    await until(async () => ((await show(box.home, task.id)).state === 'completed' ? true : undefined), 'completed');
    expect(readFileSync(out, 'utf8').trim()).toBe(join(agentHome, 'proj'));
  });
});

describe('a task cancelled while its host makes its session', () => {
  const box = usePairedHost();
  let core: HangarCore | undefined;
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
  });

  it('stays cancelled, and its agent does not run on', async () => {
    core = await HangarCore.open({ home: box.home });
    const host = core.connection('box');
    await host.link();
    const id = `t-${randomBytes(8).toString('hex')}`;
    const spec = { prompt: 'go', agent: ['sh', '-c', 'sleep 60'] };
    const claim = host.call('task.claim', { id, spec, created_at: Date.now() });
    // Cancelled as soon as the host knows the task: while its session is being made.
    let cancelled: TaskInfo | undefined;
    while (!cancelled) {
      cancelled = await host.call('task.cancel', { id }).catch((error: unknown) => {
        if (isHangarError(error) && error.code === 'E_TASK_NOT_FOUND') return undefined;
        throw error;
      });
    }
    expect(cancelled.state).toBe('cancelled');
    await claim;
    expect((await host.call('task.get', { id })).state).toBe('cancelled');
    const { sessions } = await host.call('session.list', {});
    expect(sessions.map((s) => s.name)).not.toContain(taskSessionName(id));
  });
});

describe('a long prompt', () => {
  const box = usePairedHost({
    agent: { env: { PATH: `${join(ROOT, 'test', 'fixtures', 'claude')}:${process.env['PATH']}` } },
  });
  let core: HangarCore | undefined;
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
  });

  it('of the most bytes a task may carry starts its agent', async () => {
    core = await HangarCore.open({ home: box.home });
    const host = core.connection('box');
    const id = `t-${randomBytes(8).toString('hex')}`;
    const prompt = 'é'.repeat(MAX_PROMPT_BYTES / 2);
    const task = await host.call('task.claim', {
      id,
      spec: { prompt, agent: ['sh', '-c', 'sleep 60'] },
      created_at: Date.now(),
    });
    expect(task).toMatchObject({ state: 'running', reason: null });
    // Claude Code's command has its hook settings besides (the stand-in here).
    const claude = await host.call('task.claim', {
      id: `t-${randomBytes(8).toString('hex')}`,
      spec: { prompt },
      created_at: Date.now(),
    });
    expect(claude.reason).toBeNull();
    expect(claude.state).not.toBe('error');
  });
});

describe("a host's listing", () => {
  const box = usePairedHost({ agent: { maxSessions: 64, extraArgs: ['--max-tasks', '64'] } });
  let core: HangarCore | undefined;
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
  });
  const claim = (host: ReturnType<HangarCore['connection']>, spec: { prompt: string; agent: string[] }) =>
    host.call('task.claim', { id: `t-${randomBytes(8).toString('hex')}`, spec, created_at: Date.now() });

  it('of many long prompts stays under the link’s frame: prompts cut and flagged, whole in task show', async () => {
    core = await HangarCore.open({ home: box.home });
    const host = core.connection('box');
    // 6 KiB of a control character is 36 KiB of JSON: 32 of them were past the 1 MiB frame.
    const prompt = '\x01'.repeat(MAX_PROMPT_BYTES);
    const ids: string[] = [];
    for (let i = 0; i < 32; i++) ids.push((await claim(host, { prompt, agent: ['sh', '-c', 'exit 0'] })).id);

    const listed = await hangar(box.home, ['task', 'ls', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const { hosts } = JSON.parse(listed.stdout) as { hosts: { host: string; tasks: TaskInfo[]; error?: unknown }[] };
    const onBox = hosts.find((h) => h.host === 'box')!;
    expect(onBox.error).toBeUndefined();
    expect(onBox.tasks.map((t) => t.id).sort()).toEqual([...ids].sort());
    for (const task of onBox.tasks) {
      expect(task.prompt_cut).toBe(true);
      expect(task.spec.prompt.length).toBeLessThan(400);
      expect(task.spec.prompt.endsWith('…')).toBe(true);
    }
    const whole = await show(box.home, ids[0]!);
    expect(whole.spec.prompt).toBe(prompt);
    expect(whole.prompt_cut).toBeUndefined();
  });

  it('of tasks with long agent commands lists the newest up to its byte bound and counts the rest', async () => {
    core = await HangarCore.open({ home: box.home });
    const host = core.connection('box');
    // Near the most an agent command may be (4 KiB), of characters JSON writes in six bytes: some
    // 23 KiB of JSON each, so 24 of them are past the listing's 512 KiB.
    const agent = ['sh', '-c', 'exit 0', ...Array.from({ length: 3 }, () => '\x01'.repeat(1300))];
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      ids.push((await claim(host, { prompt: 'go', agent })).id);
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct claim times: newest first
    }
    const { tasks, truncated } = await host.call('task.list', {});
    expect(tasks.length).toBeGreaterThan(0);
    expect(tasks.length).toBeLessThan(24);
    expect(tasks.map((t) => t.id)).toEqual(ids.slice(-tasks.length).reverse());
    expect(truncated).toBe(24 - tasks.length);
    expect(Buffer.byteLength(JSON.stringify(tasks))).toBeLessThanOrEqual(TASK_LIST_BUDGET_BYTES);

    const listed = await hangar(box.home, ['task', 'ls']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`box: ${24 - tasks.length} older tasks not listed`);
  });
});
