import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { HangarError } from '@hangar/shared';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RestartBudget,
  Supervisor,
  type SupervisedRestart,
  type SupervisedStart,
  type SupervisorOptions,
} from '../../src/supervision/index.js';
import { ManualClock } from './manual-clock.js';

const STAND_IN = new URL('./stand-in-child.mjs', import.meta.url).pathname;
const MINUTE = 60_000;

/** Its stdout lines, in order, for the test to wait on. */
const lines = new WeakMap<ChildProcess, string[]>();

function spawnStandIn(mode: 'serve' | 'hang' | 'never'): ChildProcess {
  const child = spawn(process.execPath, [STAND_IN, mode], { stdio: ['pipe', 'pipe', 'ignore'] });
  const seen: string[] = [];
  lines.set(child, seen);
  createInterface({ input: child.stdout! }).on('line', (line) => seen.push(line));
  // A child killed while the test writes to it: the write's EPIPE is expected.
  child.stdin!.on('error', () => undefined);
  return child;
}

/** Polls (real time) until `check` holds; every wait in these tests is bounded by this deadline. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const readyOf = async (child: ChildProcess) => {
  await until(() => lines.get(child)!.includes('ready'), 'the stand-in to be ready');
  return child;
};

/** A heartbeat probe as an agent's would be: ask, and wait for the answer (for as long as it takes). */
const ping = async (child: ChildProcess) => {
  const before = lines.get(child)!.filter((l) => l === 'pong').length;
  child.stdin!.write('ping\n');
  await until(() => lines.get(child)!.filter((l) => l === 'pong').length > before || child.exitCode !== null, 'a pong');
  if (child.exitCode !== null) throw new Error('gone');
};

describe('the supervisor keeps a child process running, within bounds', () => {
  const owned: { supervisor: Supervisor<ChildProcess>; clock: ManualClock; children: ChildProcess[] }[] = [];
  afterEach(async () => {
    for (const { supervisor, clock, children } of owned.splice(0)) {
      const disposed = supervisor.dispose();
      clock.advance(10_000); // past the SIGTERM grace: a hung child gets SIGKILL
      await disposed;
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  /** A supervisor over stand-ins (modes in order, the last repeated), with every event recorded. */
  function supervise(modes: ('serve' | 'hang' | 'never')[], options: Partial<SupervisorOptions<ChildProcess>> = {}) {
    const clock = new ManualClock();
    const children: ChildProcess[] = [];
    const supervisor = new Supervisor<ChildProcess>({
      what: 'the stand-in',
      remedy: 'Check it with: stand-in doctor',
      spawn: () => {
        const child = spawnStandIn(modes[Math.min(children.length, modes.length - 1)]!);
        children.push(child);
        return child;
      },
      ready: readyOf,
      clock,
      random: () => 0.5,
      ...options,
    });
    const started: SupervisedStart<ChildProcess>[] = [];
    const restarts: SupervisedRestart[] = [];
    const failures: HangarError[] = [];
    supervisor.onStarted((event) => started.push(event));
    supervisor.onRestarting((event) => restarts.push(event));
    supervisor.onFailed((error) => failures.push(error));
    owned.push({ supervisor, clock, children });
    /** Crashes the running child and waits until the supervisor has decided what to do. */
    const crash = async () => {
      const decisions = restarts.length + failures.length;
      children.at(-1)!.stdin!.write('crash\n');
      await until(() => restarts.length + failures.length > decisions, 'the supervisor to see the crash');
    };
    /** Lets the pending restart happen and waits until the new child is ready. */
    const restart = async () => {
      const before = started.length;
      clock.advance(restarts.at(-1)!.delayMs);
      await until(() => started.length > before, 'the restarted child to be ready');
    };
    /** Crashes the child and lets it restart, `times` times over. */
    const crashAndRestart = async (times: number) => {
      for (let i = 0; i < times; i++) {
        await crash();
        await restart();
      }
    };
    return { supervisor, clock, children, started, restarts, failures, crash, restart, crashAndRestart };
  }

  it('a child that keeps crashing is restarted after doubling delays, up to the cap', async () => {
    const run = supervise(['serve'], {
      policy: {
        maxRestarts: 7,
        windowMs: 60 * MINUTE,
        stableMs: 60 * MINUTE,
        initialDelayMs: 1000,
        maxDelayMs: 16_000,
        jitter: 0.5,
      },
    });
    await run.supervisor.start();
    await run.crashAndRestart(7);
    // random() = 0.5 with jitter 0.5: each delay is 3/4 of 1, 2, 4, 8, 16 (the cap), 16, 16 s.
    expect(run.restarts.map((r) => r.delayMs)).toEqual([750, 1500, 3000, 6000, 12_000, 12_000, 12_000]);
    expect(run.restarts.map((r) => r.reason)).toEqual(Array(7).fill('exited with status 3'));
    expect(run.started.map((s) => s.pid)).toEqual(run.children.map((c) => c.pid));
    expect(new Set(run.children.map((c) => c.pid)).size).toBe(8);
  });

  it('jitter shortens each delay by a random part, within its bound', () => {
    const policy = {
      maxRestarts: 5,
      windowMs: MINUTE,
      stableMs: MINUTE,
      initialDelayMs: 1000,
      maxDelayMs: 30_000,
      jitter: 0.25,
    };
    const early = new RestartBudget(policy, () => 0);
    const late = new RestartBudget(policy, () => 0.999_999);
    expect([0, 1, 2].map((i) => (early.next(i, 0) as { delayMs: number }).delayMs)).toEqual([1000, 2000, 4000]);
    expect([0, 1, 2].map((i) => (late.next(i, 0) as { delayMs: number }).delayMs)).toEqual([750, 1500, 3000]);
  });

  it('a sixth crash within the window ends supervision with an error that says what to do', async () => {
    const run = supervise(['serve']);
    await run.supervisor.start();
    await run.crashAndRestart(5);
    expect(run.restarts.map((r) => `${r.count}/${r.maxRestarts}`)).toEqual(['1/5', '2/5', '3/5', '4/5', '5/5']);
    await run.crash();
    expect(run.failures).toHaveLength(1);
    const error = run.failures[0]!;
    expect(error).toBeInstanceOf(HangarError);
    expect(error.code).toBe('E_UNAVAILABLE');
    expect(error.message).toBe(
      'the stand-in stopped 6 times within 5 min (the last time it exited with status 3); it is not restarted again. ' +
        'Check it with: stand-in doctor',
    );
    // Nothing is left to run: no restart timer, no child.
    expect(run.clock.pending).toBe(0);
    expect(run.supervisor.pid).toBeUndefined();
    expect(run.children).toHaveLength(6);
  });

  it('restarts older than the window no longer count', async () => {
    const run = supervise(['serve'], { policy: { stableMs: Infinity } });
    await run.supervisor.start();
    await run.crashAndRestart(5);
    run.clock.advance(5 * MINUTE);
    await run.crash();
    expect(run.failures).toEqual([]);
    expect(run.restarts.at(-1)!.count).toBe(1);
  });

  it('a child that stayed up long enough starts a fresh count and the shortest delay again', async () => {
    const run = supervise(['serve'], { policy: { windowMs: Infinity } });
    await run.supervisor.start();
    await run.crashAndRestart(5);
    run.clock.advance(MINUTE); // the sixth child runs a minute (stableMs) before it crashes
    await run.crash();
    expect(run.failures).toEqual([]);
    expect(run.restarts.at(-1)).toMatchObject({ count: 1, delayMs: 875 }); // 1 s less up to 25 % jitter
  });

  it('a child that stops answering its heartbeat is killed (SIGKILL) and restarted', async () => {
    let answered = 0;
    const probe = async (child: ChildProcess) => {
      await ping(child);
      answered++;
    };
    const run = supervise(['hang', 'serve'], { heartbeat: { probe, intervalMs: 5000, timeoutMs: 2000, misses: 2 } });
    await run.supervisor.start();
    const hung = run.children[0]!;
    run.clock.advance(5000 + 2000); // first probe, unanswered
    expect(run.restarts).toEqual([]);
    run.clock.advance(5000 + 2000); // second probe, unanswered: it is taken for hung
    await until(() => run.restarts.length === 1, 'the hung child to be replaced');
    expect(hung.signalCode).toBe('SIGKILL'); // it ignores SIGTERM, as a wedged process does
    expect(run.restarts[0]!.reason).toBe('did not answer its heartbeat 2 times in a row (no answer within 2 s)');
    await run.restart();

    // The new child answers: probe after probe, it is left alone.
    const healthy = run.children[1]!;
    for (let i = 1; i <= 3; i++) {
      run.clock.advance(5000); // the next probe is due 5 s after the last answer
      await until(() => answered === i, `answer ${i}`);
    }
    run.clock.advance(4999); // past the last probe's deadline, before the next probe
    expect(run.restarts).toHaveLength(1);
    expect(run.supervisor.pid).toBe(healthy.pid);
  });

  it('a first start that fails is reported at once, not retried', async () => {
    const run = supervise(['never']);
    await expect(run.supervisor.start()).rejects.toThrow('the stand-in exited with status 2 before it was ready');
    expect(run.restarts).toEqual([]);
    expect(run.clock.pending).toBe(0);
  });

  it('dispose stops the child and restarts nothing', async () => {
    const run = supervise(['serve']);
    await run.supervisor.start();
    const child = run.children[0]!;
    await run.supervisor.dispose();
    expect(child.signalCode).toBe('SIGTERM');
    expect(run.restarts).toEqual([]);
    expect(run.clock.pending).toBe(0);
  });
});
