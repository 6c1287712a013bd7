import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AGENT_BIN,
  endAgent,
  hangar,
  pairWith,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';

describe('one agent per data dir', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  it("a second hangar-agent serve on a data dir in use is refused, and the running agent's job runs on", async () => {
    const dataDir = tempDir('agent');
    const home = tempDir('home');
    const first: AgentProcess = await startAgentProcess(dataDir);
    cleanups.push(async () => {
      // At once, without waiting for the job's drain.
      await first.stop('SIGINT');
      await endAgent(first, dataDir, home);
    });
    await pairWith(home, 'box', first);
    const ran = await hangar(home, ['run', '--host', 'box', '--no-workspace', '--detach', '-c', 'sleep 30']);
    expect(ran.code, ran.stderr).toBe(0);
    const id = ran.stdout.trim();
    const state = async () =>
      (JSON.parse((await hangar(home, ['jobs', 'show', id, '--host', 'box', '--json'])).stdout) as { state: string })
        .state;
    for (let i = 0; (await state()) !== 'running'; i++) {
      if (i > 100) throw new Error(`job ${id} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // As a user starts one by hand while the service runs (another port, so nothing else stops it).
    const second = spawn(process.execPath, [AGENT_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HANGAR_LOG_LEVEL: 'warn' },
    });
    cleanups.push(() => void (second.exitCode === null && second.kill('SIGKILL')));
    let stderr = '';
    second.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = await Promise.race([
      new Promise<number | null>((resolve) => second.once('exit', (code) => resolve(code))),
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 15_000)),
    ]);
    // Was: it started, took the job for lost and killed it ("the command was killed by SIGKILL").
    expect(exited).toBe(1);
    expect(stderr).toContain(`hangar-agent: another hangar-agent (pid ${first.child.pid}`);
    expect(stderr).toContain(`serves ${dataDir}; stop it first`);
    expect(await state()).toBe('running');
  });
});
