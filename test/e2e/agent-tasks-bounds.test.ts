import type { TaskInfo } from '@hangar/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, removeDir, tempDir } from '../support/processes.js';

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
});
