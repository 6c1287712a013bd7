import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { AgentStore } from '../../src/store/db.js';
import { processesMatching, uniqueSleep } from '../../../test/support/until.js';
import { checkpointedPgid, groupMembers, startJobHost, waitUntil } from './fixture.js';

/** Runs an agent in its own process, submits `command`, and kill -9s the agent once the job runs. */
async function crashMidJob(dataDir: string, command: string, retries: number): Promise<string> {
  const agent = spawn(
    process.execPath,
    [join(import.meta.dirname, 'crash-agent.mjs'), dataDir, command, String(retries)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise((resolve) => agent.once('exit', resolve));
  const lines = createInterface({ input: agent.stdout! });
  const id = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => resolve((JSON.parse(line) as { running: string }).running));
    void exited.then((code) => reject(new Error(`crash agent exited with ${String(code)}`)));
  });
  agent.kill('SIGKILL');
  await exited;
  return id;
}

describe('crash recovery and shutdown', () => {
  it('after kill -9 of the agent mid-job, a restart marks the attempt lost, kills what it left and retries', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    try {
      const id = await crashMidJob(dataDir, 'echo before-crash; exec sleep 60', 1);
      const before = AgentStore.open(dataDir);
      const orphan = checkpointedPgid(before, id)!;
      before.dispose();
      expect(await groupMembers(orphan)).not.toEqual([]);

      await using host = await startJobHost({ dataDir });
      const pgid = checkpointedPgid(host.store, id, 1)!;
      expect(pgid).toBeGreaterThan(1);
      // The recovery ran in JobService.start: the orphaned sleep is gone, before attempt 2 even begins.
      expect(await groupMembers(pgid)).toEqual([]);
      const job = await waitUntil(() => {
        const detail = host.jobs.get(id);
        return detail.attempt === 2 && detail.state === 'running' ? detail : undefined;
      });
      expect(job.attempts[0]).toMatchObject({ state: 'lost', number: 1 });
      expect(job.attempts[0]!.error).toMatch(/agent stopped/);
      const log = await host.connect().readLog(id, { attempt: 1 });
      expect(log.data.toString()).toMatch(/^before-crash\n\n\[hangar\] attempt lost/);
      await host.jobs.cancel(id);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a lost attempt with no retries left ends the job as lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    try {
      const id = await crashMidJob(dataDir, 'sleep 60', 0);
      await using host = await startJobHost({ dataDir });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect(await groupMembers(checkpointedPgid(host.store, id)!)).toEqual([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('after kill -9 of the agent, a restart also kills what the lost attempt moved out of its group', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-crash-'));
    const escaped = uniqueSleep();
    const daemon = uniqueSleep();
    try {
      // setsid, and a daemon's double fork (reparented to init): no group or parent leads to them.
      const command = [`setsid ${escaped} &`, `sh -c 'setsid sh -c "${daemon} &" &'`, 'exec sleep 60'].join('\n');
      const id = await crashMidJob(dataDir, command, 0);
      await waitUntil(() => processesMatching(escaped).length > 0 && processesMatching(daemon).length > 0);
      await using host = await startJobHost({ dataDir });
      expect(host.jobs.get(id)).toMatchObject({ state: 'lost', attempt: 1 });
      expect({ escaped: processesMatching(escaped), daemon: processesMatching(daemon) }).toEqual({
        escaped: [],
        daemon: [],
      });
    } finally {
      for (const pid of [...processesMatching(escaped), ...processesMatching(daemon)]) process.kill(pid, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('on shutdown, running jobs get the grace to finish, the rest are requeued and run on the next start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hangar-drain-'));
    try {
      let quick: string;
      let slow: string;
      {
        await using host = await startJobHost({ dataDir, maxJobs: 2, killGraceMs: 500 });
        quick = (await host.submit({ command: 'sleep 0.3; echo quick', executor: 'shell' })).id;
        slow = (await host.submit({ command: 'trap "exit 143" TERM; sleep 60 & wait', executor: 'shell' })).id;
        await host.waitFor(slow, ['running']);
        await host.waitFor(quick, ['running']);
        const pgid = checkpointedPgid(host.store, slow)!;
        await host.jobs.drain(1000);
        expect(host.jobs.get(quick).state).toBe('succeeded');
        const requeued = host.jobs.get(slow);
        expect(requeued).toMatchObject({ state: 'queued', attempt: 1 });
        expect(requeued.attempts[0]).toMatchObject({ state: 'cancelled' });
        expect(await groupMembers(pgid)).toEqual([]);
        await host.stop();
      }
      await using again = await startJobHost({ dataDir, killGraceMs: 200 });
      await again.waitFor(slow, ['running']);
      expect(again.jobs.get(slow).attempt).toBe(2);
      await again.jobs.cancel(slow);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
