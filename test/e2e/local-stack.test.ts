import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNativeLanes } from '@hangar/lane';
import { BASH, HANGAR_BIN, hangar, killTmuxServer, removeDir, tempDir } from '../support/processes.js';
import { startServingCli, type ServingCli } from '../support/serving-cli.js';
import { until } from '../support/until.js';

const [major, minor] = release().split('.').map(Number);
/** Linux 6.12 and later take a slice per thread (sched_setattr's sched_runtime under EEVDF). */
const slicesPerThread = process.platform === 'linux' && (major! > 6 || (major === 6 && minor! >= 12));
const sliceOf = (pid: number) => Number(/^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'))![1]);

/** `npm start` runs `hangar up`: an embedded agent for this machine, paired as host "local". */
describe('the local stack (npm start)', () => {
  let home: string | undefined;
  let up: ChildProcess | undefined;

  const startUp = async (dir: string) => {
    const child = spawn(process.execPath, [HANGAR_BIN, 'up'], {
      env: { ...process.env, HANGAR_HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hangar up did not come up: ${out}`)), 20_000);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('local stack up')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`hangar up exited with ${code}: ${out}`)));
    });
    return child;
  };

  const stopUp = async (child: ChildProcess) => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    return exited;
  };

  afterEach(async () => {
    if (up && up.exitCode === null) await stopUp(up);
    if (home) {
      await killTmuxServer(join(home, 'agent'));
      removeDir(home);
    }
  });

  it('pairs this machine as "local" once, and sessions outlive the stack', async () => {
    home = tempDir('up');
    up = await startUp(home);
    const hosts = JSON.parse((await hangar(home, ['hosts', 'ls', '--json'])).stdout) as {
      name: string;
      embedded: boolean;
      added_at: number;
    }[];
    expect(hosts).toEqual([expect.objectContaining({ name: 'local', embedded: true })]);
    const created = await hangar(home, ['session', 'new', 'local', '--name', 'work', ...BASH]);
    expect(created.stderr).toBe('');

    expect(await stopUp(up)).toBe(0);
    up = await startUp(home);
    const again = JSON.parse((await hangar(home, ['hosts', 'ls', '--json'])).stdout) as { added_at: number }[];
    expect(again[0]!.added_at).toBe(hosts[0]!.added_at);
    const listed = JSON.parse((await hangar(home, ['session', 'ls', 'local', '--json'])).stdout);
    expect(listed[0].sessions).toEqual([expect.objectContaining({ name: 'work', alive: true })]);
  });

  // Issue 17: each key typed in the web UI passes the main threads of `hangar up`'s core and of its
  // agent; both get the keystroke path's 0.1 ms CPU slice (the native relay's preferLatency), as
  // `hangar attach`'s command does, so that a woken key does not wait out a longer slice.
  it.runIf(slicesPerThread)("the core's and the agent's main threads get the keystroke's CPU slice", async () => {
    const lanes = loadNativeLanes();
    if ('unavailable' in lanes) throw new Error(lanes.unavailable);
    home = tempDir('up');
    up = await startUp(home);
    const agent = readFileSync(`/proc/${up.pid}/task/${up.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number)
      .find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve'));
    expect(agent, 'the embedded agent').toBeDefined();
    expect(sliceOf(up.pid!)).toBe(100_000);
    expect(sliceOf(agent!)).toBe(100_000);
  });

  it('says what to do when the local stack is not running', async () => {
    home = tempDir('up');
    up = await startUp(home);
    expect(await stopUp(up)).toBe(0);
    const refused = await hangar(home, ['session', 'ls', 'local']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/npm start/);
  });
});

/**
 * `hangar up` keeps its agent running: a crash or a hang (found by the heartbeat, a ping on the
 * agent's stdin every 5 s answered on its stdout) is followed by a restart after a backoff; the CLI works again after.
 */
describe('the local stack restarts its agent', () => {
  let home: string | undefined;
  let up: ServingCli | undefined;
  const stopped: number[] = [];

  afterEach(async () => {
    // An agent a failed test left stopped (SIGSTOP) would hold `up`'s SIGTERM for its grace.
    for (const pid of stopped.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await up?.stop();
    up = undefined;
    if (home) {
      await killTmuxServer(join(home, 'agent'));
      removeDir(home);
      home = undefined;
    }
  });

  const startUpNoUi = async () => {
    home = tempDir('up-restart');
    up = await startServingCli(home, ['up', '--no-ui'], /local stack up — host "local" at (\S+)/, 'SIGINT');
    return up;
  };

  /** Waits until `hangar up` has said "local stack up" `times` times, with a new agent each time. */
  const waitForStarts = async (stack: ServingCli, times: number, withinMs: number) => {
    const deadline = Date.now() + withinMs;
    while ((stack.output().match(/local stack up/g) ?? []).length < times) {
      if (Date.now() > deadline) throw new Error(`no restart within ${withinMs / 1000} s:\n${stack.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const cliWorks = async () => {
    const created = await hangar(home!, ['session', 'new', 'local', '--name', 'after', ...BASH]);
    expect(created.stderr).toBe('');
    const listed = await hangar(home!, ['session', 'ls', 'local', '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'after', alive: true })]);
  };

  it('an agent killed with kill -9 is started again after a backoff, and the CLI works', async () => {
    const stack = await startUpNoUi();
    const first = agentPid(stack.child);
    process.kill(first, 'SIGKILL');
    await waitForStarts(stack, 2, 30_000);
    expect(stack.output()).toMatch(
      /hangar: the embedded agent was killed by SIGKILL; restarting it in \d+\.\d s \(restart 1 of at most 5 in 5 min\)/,
    );
    const second = agentPid(stack.child);
    expect(second).not.toBe(first);
    expect(stack.output()).toContain(`(agent pid ${second};`);
    await cliWorks();
  });

  it('hangar up killed with kill -9 takes its agent with it: the next one is the only agent on the data dir', async () => {
    const stack = await startUpNoUi();
    const first = agentPid(stack.child);
    const exited = new Promise((resolve) => stack.child.once('exit', resolve));
    stack.child.kill('SIGKILL');
    await exited;
    // Was: the agent ran on under init, and the next hangar up started a second one on the same
    // data dir, which took the first one's running jobs for lost.
    const gone = await until(() => (isAlive(first) ? undefined : true), 'the orphaned agent to stop', 20_000).catch(
      () => false,
    );
    if (!gone) process.kill(first, 'SIGKILL');
    expect(gone).toBe(true);
    up = await startServingCli(home!, ['up', '--no-ui'], /local stack up — host "local" at (\S+)/, 'SIGINT');
    await cliWorks();
  });

  it('a hung agent (SIGSTOP) is found by its heartbeat, killed and started again', async () => {
    const stack = await startUpNoUi();
    const first = agentPid(stack.child);
    process.kill(first, 'SIGSTOP');
    stopped.push(first);
    // Two unanswered 5 s probes, then a restart after ~1 s: well within a minute, even on a busy machine.
    await waitForStarts(stack, 2, 60_000);
    expect(stack.output()).toMatch(
      /hangar: the embedded agent did not answer its heartbeat 2 times in a row \(no answer within 5 s\); restarting it/,
    );
    expect(isAlive(first)).toBe(false);
    await cliWorks();
  }, 120_000);
});

/** The embedded agent's pid: the child of `hangar up` that runs `hangar-agent serve` (Linux /proc). */
function agentPid(up: ChildProcess): number {
  const children = readFileSync(`/proc/${up.pid}/task/${up.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const agent = children.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve');
    } catch {
      return false; // it exited while we looked
    }
  });
  if (agent === undefined) throw new Error(`hangar up (pid ${up.pid}) runs no agent`);
  return agent;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: gone
  }
}
