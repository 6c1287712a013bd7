import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AttemptLog, BURST_POLL_MS } from '../../src/jobs/attempt-log.js';

/**
 * The log's growth comes from the file system's change events, then from looking every
 * BURST_POLL_MS while it grows. The timers are fake here (the 250 ms backstop poll included), so
 * only a change event can tell of a write until the test moves the clock: each step is seen by the
 * mechanism the step is about. The change events themselves are real (inotify).
 */
describe('an attempt log watched for growth', () => {
  let dir: string;
  let log: AttemptLog | undefined;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    dir = mkdtempSync(join(tmpdir(), 'hangar-attempt-log-'));
  });
  afterEach(() => {
    log?.dispose();
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a burst of writes is told once, then by looking every few ms, and a write after the burst by the watch again', async () => {
    const path = join(dir, 'log');
    const calls = { count: 0 };
    log = AttemptLog.open(path, () => calls.count++);
    // A job writes to the file itself (its stdout is the log's fd).
    appendFileSync(path, 'a'.repeat(8192));
    await waitFor(() => calls.count === 1);
    expect(log.size).toBe(8192);

    // While it keeps growing the watch is off: more writes, no call, until the clock moves.
    for (let i = 0; i < 50; i++) appendFileSync(path, 'b'.repeat(8192));
    await settle();
    expect(calls.count).toBe(1);
    vi.advanceTimersByTime(BURST_POLL_MS);
    await waitFor(() => calls.count === 2);
    expect(log.size).toBe(51 * 8192);

    // A look that finds no growth watches again: a later write is told without the clock moving.
    vi.advanceTimersByTime(BURST_POLL_MS);
    await settle();
    expect(calls.count).toBe(2);
    appendFileSync(path, 'c');
    await waitFor(() => calls.count === 3);
    expect(log.size).toBe(51 * 8192 + 1);
  });
});

/** Real time passes (an inotify event's trip), the fake clock stands still. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => realDelay(50, r));
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => realDelay(10, r));
  expect(check()).toBe(true);
}

/** Waits `ms` of real time (the fake timers leave setImmediate and Date alone). */
function realDelay(ms: number, done: (value: unknown) => void): void {
  const until = Date.now() + ms;
  const spin = () => (Date.now() >= until ? done(0) : setImmediate(spin));
  spin();
}
