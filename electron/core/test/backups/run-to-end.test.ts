import { HangarError, type BackupRun } from '@hangar/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runToEnd } from '../../src/backups/index.js';
import type { HostConnection } from '../../src/connection/host-connection.js';

/**
 * The core's wait for a host's backup to end, against a stand-in for the host's connection with
 * the real one's `call` and `on`: its backup.status calls never answer (a link whose calls hang),
 * or answer that the run goes on. Fake timers: no wall clock.
 */

const RUN: BackupRun = {
  id: 'b-0123456789abcdef',
  kind: 'backup',
  trigger: 'user',
  state: 'running',
  started_at: 0,
  finished_at: null,
  snapshot: null,
  files: null,
  bytes: null,
  added_bytes: null,
  message: null,
  to: null,
};

function standIn(answer: 'hang' | 'running') {
  const listeners = new Map<string, (data: unknown) => void>();
  let inFlight = 0;
  let mostInFlight = 0;
  const connection = {
    call: (method: string) => {
      expect(method).toBe('backup.status');
      if (answer === 'running') return Promise.resolve({ running: RUN, recent: [RUN] });
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      return new Promise(() => undefined);
    },
    on: (event: string, listener: (data: unknown) => void) => {
      listeners.set(event, listener);
      return { dispose: () => listeners.delete(event) };
    },
  } as unknown as Pick<HostConnection, 'call' | 'on'>;
  return {
    connection,
    emit: (event: string, data: unknown) => listeners.get(event)?.(data),
    mostInFlight: () => mostInFlight,
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the wait for a backup to end', () => {
  it('asks one status at a time, and ends after a long silence saying the run goes on and where to see it', async () => {
    vi.useFakeTimers();
    const host = standIn('hang');
    const waited = runToEnd(
      () => host.connection,
      async () => RUN,
      () => undefined,
      { host: 'box' },
    );
    const failed = waited.catch((error: unknown) => error as Error);
    await vi.advanceTimersByTimeAsync(4 * 60_000);
    expect(host.mostInFlight()).toBe(1);
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    const error = await failed;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain('no word from box about the backup (b-0123456789abcdef)');
    expect(error.message).toContain('the backup goes on on the host: see it with: hangar backup status box');
  });

  it('waits as long as the host says the run goes on, and answers with the run when it ended', async () => {
    vi.useFakeTimers();
    const host = standIn('running');
    const progress: number[] = [];
    let result: BackupRun | undefined;
    void runToEnd(
      () => host.connection,
      async () => RUN,
      (p) => progress.push(p.percent),
      { host: 'box' },
    ).then((run) => (result = run));
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(result).toBeUndefined();
    host.emit('backup.progress', {
      run: RUN.id,
      percent: 0.5,
      bytes_done: 1,
      total_bytes: 2,
      files_done: 1,
      total_files: 2,
    });
    host.emit('backup.updated', { run: { ...RUN, state: 'ok', finished_at: 1 } });
    await vi.advanceTimersByTimeAsync(0);
    expect(progress).toEqual([0.5]);
    expect(result?.state).toBe('ok');
  });

  it('asks through the connection the core holds now: one dropped (the agent moved port) does not hold the wait', async () => {
    vi.useFakeTimers();
    // The dropped connection answers every call as a closed one does; the new one knows the run
    // ended (the restarted agent recorded it as stopped).
    const dropped = {
      call: () => Promise.reject(new HangarError('E_UNAVAILABLE', 'connection to "local" was closed')),
      on: () => ({ dispose: () => undefined }),
    } as unknown as Pick<HostConnection, 'call' | 'on'>;
    const ended: BackupRun = { ...RUN, kind: 'restore', state: 'error', finished_at: 1, message: 'the agent stopped' };
    const fresh = {
      call: () => Promise.resolve({ running: null, recent: [ended] }),
      on: () => ({ dispose: () => undefined }),
    } as unknown as Pick<HostConnection, 'call' | 'on'>;
    let now = dropped;
    let result: BackupRun | undefined;
    void runToEnd(
      () => now,
      async () => ({ ...RUN, kind: 'restore' }),
      () => undefined,
      { host: 'local' },
    ).then((run) => (result = run));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(result).toBeUndefined();
    now = fresh;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(result).toMatchObject({ state: 'error', message: 'the agent stopped' });
  });
});
