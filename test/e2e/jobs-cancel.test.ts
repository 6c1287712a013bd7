import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as pty from 'node-pty';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HANGAR_BIN,
  endAgent,
  hangar,
  pairWith,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';

const exec = promisify(execFile);

/** Pids whose command line contains `needle` (the process table, as `ps` shows it). */
async function processesMatching(needle: string): Promise<number[]> {
  const { stdout } = await exec('ps', ['-eo', 'pid=,args=']);
  return stdout
    .split('\n')
    .filter((line) => line.includes(needle) && !line.includes('ps -eo'))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

async function until<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('cancelling a job', () => {
  let home: string;
  let dataDir: string;
  let workspace: string;
  let agent: AgentProcess;

  beforeEach(async () => {
    home = tempDir('home');
    dataDir = tempDir('agent');
    workspace = tempDir('ws');
    writeFileSync(join(workspace, 'README'), 'cancel me\n');
    agent = await startAgentProcess(dataDir);
    await pairWith(home, 'local', agent);
  });

  afterEach(async () => {
    await endAgent(agent, home, dataDir, workspace);
  });

  it('Ctrl-C in hangar run cancels the job, waits for its end, and leaves no process behind', async () => {
    const marker = `sleep 3${process.pid % 1000}1`;
    const cli = pty.spawn(
      process.execPath,
      [HANGAR_BIN, 'run', '--executor', 'shell', '--dir', workspace, '-c', `echo started; ${marker}; echo never`],
      { name: 'xterm-256color', cols: 120, rows: 30, cwd: workspace, env: { ...process.env, HANGAR_HOME: home } },
    );
    let screen = '';
    cli.onData((data) => (screen += data));
    const exited = new Promise<number>((resolve) => cli.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      await until(async () => (screen.includes('started') ? true : undefined), 'the job to start');
      expect(await processesMatching(marker)).not.toEqual([]);
      cli.write('\x03');
      const code = await Promise.race([
        exited,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`no exit; screen: ${screen}`)), 20_000)),
      ]);
      expect(screen).toContain('cancelling job');
      expect(screen).toMatch(/job j-[a-z0-9]+ was cancelled/);
      // The command line is echoed on stderr; the job's own `never` would be a line of its own.
      expect(screen).not.toMatch(/^never\r?$/m);
      expect(code).toBe(130);
      expect(await processesMatching(marker)).toEqual([]);
    } finally {
      cli.kill();
    }
  }, 40_000);

  it('hangar cancel ends a detached job and its processes; the job shows as cancelled', async () => {
    const marker = `sleep 3${process.pid % 1000}2`;
    const detached = await hangar(home, [
      'run',
      '--executor',
      'shell',
      '--dir',
      workspace,
      '--detach',
      '-c',
      `(${marker}) & ${marker}`,
    ]);
    const id = detached.stdout.trim();
    await until(async () => ((await processesMatching(marker)).length >= 2 ? true : undefined), 'both sleeps');
    const cancelled = await hangar(home, ['cancel', id]);
    expect(cancelled).toMatchObject({ code: 0, stdout: `job ${id} on local is cancelled\n` });
    expect(await processesMatching(marker)).toEqual([]);
    const shown = await hangar(home, ['jobs', 'show', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: 'cancelled', host: 'local' });
    const followed = await hangar(home, ['logs', id, '--follow']);
    expect(followed.code).toBe(130);
  }, 40_000);

  it('a job id no paired host knows is reported as not found', async () => {
    const result = await hangar(home, ['cancel', 'j-00000000']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no paired host has job j-00000000');
  });
});
