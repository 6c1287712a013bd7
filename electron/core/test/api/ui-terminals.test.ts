import { Emitter } from '@hangar/shared';
import { describe, it, vi } from 'vitest';
import type { HangarCore } from '../../src/core.js';
import { UiTerminals } from '../../src/api/terminals.js';
import {
  expectKeysAckedByEcho,
  expectUnechoedKeyAcked,
  typingEnd,
  useTypingEnds,
} from '../../../../test/support/terminal-acks.js';

useTypingEnds();

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

/** A terminal opened through UiTerminals on a stream of the window's. */
function openTerminal() {
  const { core, state } = fakeCore();
  return typingEnd(state, async (mux, streamId) => {
    const terminals = new UiTerminals(core, mux, () => undefined);
    const { after } = await terminals.open({ host: 'mini', session: 'work', cols: 80, rows: 24, stream_id: streamId });
    after();
    return () => void terminals.dispose();
  });
}

describe("the core's terminals: keys typed in the window", () => {
  it('at a person’s pace each key is acked by its echo, with no ack timer per key', async () => {
    vi.useFakeTimers();
    await expectKeysAckedByEcho(await openTerminal(), false);
  });

  it('a key with no echo is still acked, within twice the delay', async () => {
    vi.useFakeTimers();
    await expectUnechoedKeyAcked(await openTerminal());
  });
});
