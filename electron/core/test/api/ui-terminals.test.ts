import {
  createMemoryTransportPair,
  decodeFrame,
  Emitter,
  Mux,
  TERMINAL_INPUT_ACK_DELAY_MS,
  TERMINAL_OUTPUT_ACK_DELAY_MS,
  type Frame,
} from '@hangar/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HangarCore } from '../../src/core.js';
import { UiTerminals } from '../../src/api/terminals.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  vi.useRealTimers();
});

/** A core whose terminals echo what is typed 1 ms later (unless `echo` is off), as a host would. */
function fakeCore() {
  const state = { echo: true, typed: 0 };
  const core = {
    async attach(_host: string, _session: string, _size: unknown, listen: (client: unknown) => void) {
      const output = new Emitter<{ data: Uint8Array; offset: number }>();
      let produced = 0;
      const client = {
        onOutput: output.event,
        onStatus: new Emitter<string>().event,
        onEnd: new Emitter<unknown>().event,
        write(data: Uint8Array) {
          state.typed += data.length;
          if (!state.echo) return;
          const echo = data.slice();
          setTimeout(() => {
            output.fire({ data: echo, offset: produced });
            produced += echo.length;
          }, 1);
        },
        ack: () => undefined,
        detach: async () => undefined,
      };
      listen(client);
      return client;
    },
  };
  return { core: core as unknown as HangarCore, state };
}

/** The UI's mux and the core's, a terminal opened through UiTerminals on a stream of the UI's. */
async function openTerminal() {
  const pair = createMemoryTransportPair();
  const ui = new Mux(pair[0], { role: 'client' });
  const coreMux = new Mux(pair[1], { role: 'agent' });
  const { core, state } = fakeCore();
  const terminals = new UiTerminals(core, coreMux, () => undefined);
  cleanups.push(() => {
    void terminals.dispose();
    ui.dispose();
    coreMux.dispose();
    pair.cut();
  });
  const fromCore: Frame[] = [];
  pair[0].onFrame((bytes) => fromCore.push(decodeFrame(bytes)));
  const tab = ui.openStream();
  tab.ackDelayMs = TERMINAL_OUTPUT_ACK_DELAY_MS; // as the window's terminals (CoreTerminal)
  let echoed = 0;
  tab.onData((data) => (echoed += data.length));
  const { after } = await terminals.open({ host: 'mini', session: 'work', cols: 80, rows: 24, stream_id: tab.id });
  after();
  return { tab, state, fromCore, echoed: () => echoed };
}

describe("the core's terminals: keys typed in the window", () => {
  it('at a person’s pace each key is acked by its echo, with no ack timer per key', async () => {
    vi.useFakeTimers();
    const { tab, fromCore, echoed } = await openTerminal();
    const timers = vi.spyOn(globalThis, 'setTimeout');
    for (let i = 1; i <= 20; i++) {
      tab.write(new TextEncoder().encode('a'));
      await vi.advanceTimersByTimeAsync(200);
      expect(echoed()).toBe(i);
      expect(tab.peerAckedOffset).toBe(i);
    }
    // The core's ack timers (the stand-in's echoes wait 1 ms, the window's acks their own delay):
    // one per key would be 20.
    const ackTimers = timers.mock.calls.filter(([, ms]) => (ms ?? 0) > 1 && ms !== TERMINAL_OUTPUT_ACK_DELAY_MS);
    expect(ackTimers.length).toBeLessThanOrEqual(10);
    const ofTab = fromCore.filter((f) => (f.type === 'data' || f.type === 'ack') && f.stream === tab.id);
    ofTab.forEach((frame, i) => {
      if (frame.type === 'ack') expect(ofTab[i - 1]?.type).toBe('data');
    });
  });

  it('a key with no echo is still acked, within twice the delay', async () => {
    vi.useFakeTimers();
    const { tab, state } = await openTerminal();
    state.echo = false;
    tab.write(new TextEncoder().encode('secret'));
    await vi.advanceTimersByTimeAsync(10);
    expect(state.typed).toBe(6);
    await vi.advanceTimersByTimeAsync(2 * TERMINAL_INPUT_ACK_DELAY_MS);
    expect(tab.peerAckedOffset).toBe(6);
  });
});
