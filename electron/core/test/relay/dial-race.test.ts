import { HangarError } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { RaceFailed, raceDials, type RaceWay } from '../../src/relay/dial-race.js';

/** A way whose outcome the test decides: what it was started with, when, and whether it was aborted. */
function way(name: string, afterMs: number, deferred?: () => boolean) {
  let settle!: { open: (value: string) => void; fail: (error: HangarError) => void };
  const state = { startedAt: -1, aborted: false, closed: [] as string[] };
  const began = Date.now();
  const entry: RaceWay<string> = {
    name,
    afterMs,
    ...(deferred ? { deferred } : {}),
    dial: (signal) => {
      state.startedAt = Date.now() - began;
      signal.addEventListener('abort', () => (state.aborted = true));
      return new Promise<string>((resolve, reject) => (settle = { open: resolve, fail: reject }));
    },
  };
  return { entry, state, open: (v: string) => settle.open(v), fail: (e: HangarError) => settle.fail(e) };
}

const unreachable = () => new HangarError('E_HOST_UNREACHABLE', 'no path');
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('raceDials', () => {
  it('starts the next way after its head start; the first to open wins, the other is aborted, and closed when it opens anyway', async () => {
    const a = way('webrtc', 0);
    const b = way('relayed', 40);
    const closed: string[] = [];
    const race = raceDials([a.entry, b.entry], { close: (v) => closed.push(v), final: () => false });
    await tick(10);
    expect(b.state.startedAt).toBe(-1);
    await tick(60);
    expect(b.state.startedAt).toBeGreaterThanOrEqual(35);
    b.open('splice');
    await expect(race).resolves.toEqual({ value: 'splice', name: 'relayed' });
    expect(a.state.aborted).toBe(true);
    expect(b.state.aborted).toBe(false);
    a.open('late');
    await tick(0);
    expect(closed).toEqual(['late']);
  });

  it('starts the next way at once when every started one failed, and a deferred one only then', async () => {
    let promising = false;
    const a = way('webrtc', 0);
    const b = way('relayed', 20, () => promising);
    const race = raceDials([a.entry, b.entry], { close: () => undefined, final: () => false });
    promising = true;
    await tick(50);
    expect(b.state.startedAt).toBe(-1); // deferred at its time
    a.fail(unreachable());
    await tick(0);
    expect(b.state.startedAt).toBeGreaterThanOrEqual(0);
    b.open('splice');
    await expect(race).resolves.toMatchObject({ name: 'relayed' });
  });

  it('fails with every way’s failure, in order, once all failed; a final failure ends it at once', async () => {
    const a = way('addresses', 0);
    const b = way('fallbacks', 1_000);
    const race = raceDials([a.entry, b.entry], { close: () => undefined, final: () => false });
    a.fail(new HangarError('E_HOST_UNREACHABLE', 'nothing answers'));
    await tick(0);
    b.fail(new HangarError('E_TIMEOUT', 'no splice'));
    const failed = await race.catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(RaceFailed);
    expect((failed as RaceFailed).failures.map((f) => [f.name, f.error.message])).toEqual([
      ['addresses', 'nothing answers'],
      ['fallbacks', 'no splice'],
    ]);

    const c = way('addresses', 0);
    const d = way('fallbacks', 0);
    const ended = raceDials([c.entry, d.entry], {
      close: () => undefined,
      final: (e) => e.code === 'E_AUTH_HOST_KEY_CHANGED',
    });
    c.fail(new HangarError('E_AUTH_HOST_KEY_CHANGED', 'another key'));
    await expect(ended).rejects.toMatchObject({ code: 'E_AUTH_HOST_KEY_CHANGED' });
    expect(d.state.aborted).toBe(true);
  });
});
