import type { TaskInfo } from '@hangar/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/index.js';
import { endAgent, hangar, pairWith, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { startServingCli, type ServingCli } from '../support/serving-cli.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { until } from '../support/until.js';

/**
 * A claim whose answer is lost: the host that may have the task is asked first next time, and no
 * other host while it cannot be asked, so one task never runs on two hosts.
 */
describe('a claim whose answer was lost', () => {
  const dirs: string[] = [];
  let alpha: AgentProcess | undefined;
  let beta: AgentProcess | undefined;
  let proxy: TcpProxy | undefined;
  let ui: ServingCli | undefined;
  let watcher: HangarCore | undefined;
  afterAll(async () => {
    await watcher?.dispose();
    await ui?.stop();
    await proxy?.[Symbol.asyncDispose]();
    await endAgent(beta);
    await endAgent(alpha, ...dirs);
  });

  it('is asked of that host again, and no other host takes the task meanwhile', async () => {
    const home = tempDir('home');
    const watch = tempDir('watch');
    const alphaDir = tempDir('alpha');
    const betaDir = tempDir('beta');
    dirs.push(home, watch, alphaDir, betaDir);
    alpha = await startAgentProcess(alphaDir, { extraArgs: ['--max-tasks', '1'] });
    beta = await startAgentProcess(betaDir);
    proxy = await TcpProxy.start(beta.port);
    await pairWith(home, 'alpha', alpha);
    await pairWith(home, 'beta', beta, proxy.address);
    // Another computer that sees beta's tasks directly, not through the proxy.
    await pairWith(watch, 'beta', beta);
    watcher = await HangarCore.open({ home: watch });
    const onBeta = watcher.connection('beta');

    ui = await startServingCli(home, ['ui'], /Hangar UI at (\S+)/);
    const add = async (args: string[]): Promise<TaskInfo> => {
      const added = await hangar(home, ['task', 'add', '--json', ...args]);
      expect(added.code, added.stderr).toBe(0);
      return JSON.parse(added.stdout) as TaskInfo;
    };
    // alpha (first by name) runs one task, its limit: the next goes to beta.
    const hold = await add(['hold', '--host', 'alpha', '--', 'sh', '-c', 'sleep 60']);
    expect(hold.host).toBe('alpha');

    // What beta sends is lost from now on: the claim reaches it, its answer never comes back.
    // (Cutting the link once beta lists the task raced the answer under load: CI run 30.)
    proxy.setBlackhole(true, 'fromTarget');
    const adding = add(['go', '--', 'sh', '-c', 'sleep 60']);
    // Once beta has the task, the link to it goes, its answer unheard.
    const taken = await until(async () => {
      const { tasks } = await onBeta.call('task.list', {});
      return tasks.find((t) => t.spec.prompt === 'go');
    }, 'beta to take the task');
    proxy.setRefusing(true);
    proxy.cutAll();
    proxy.setBlackhole(false);
    const added = await adding;
    expect(added).toMatchObject({ id: taken.id, state: 'queued', host: null });

    // alpha is free now, and its ending a task makes the running app offer the queue again.
    expect((await hangar(home, ['task', 'cancel', hold.id])).code).toBe(0);
    const waiting = await until(async () => {
      const shown = JSON.parse((await hangar(home, ['task', 'show', taken.id, '--json'])).stdout) as TaskInfo;
      return shown.host !== null || shown.reason?.includes('it may have taken the task') ? shown : undefined;
    }, 'the queue to be offered again');
    expect(waiting).toMatchObject({ state: 'queued', host: null });
    const { tasks: onAlpha } = JSON.parse((await hangar(home, ['task', 'ls', '--json'])).stdout).hosts.find(
      (h: { host: string }) => h.host === 'alpha',
    ) as { tasks: TaskInfo[] };
    expect(onAlpha.map((t) => t.id)).not.toContain(taken.id);

    // beta back: it answers with the task it has.
    proxy.setRefusing(false);
    const claimed = await until(
      async () => {
        const shown = JSON.parse((await hangar(home, ['task', 'show', taken.id, '--json'])).stdout) as TaskInfo;
        return shown.host !== null ? shown : undefined;
      },
      'beta to answer',
      45_000,
    );
    expect(claimed).toMatchObject({ host: 'beta', claimed_at: taken.claimed_at });
  }, 90_000);
});
