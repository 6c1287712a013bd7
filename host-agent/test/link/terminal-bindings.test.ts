import { describe, it, vi } from 'vitest';
import { Emitter } from '@hangar/shared';
import {
  expectKeysAckedByEcho,
  expectUnechoedKeyAcked,
  typingEnd,
  useTypingEnds,
} from '../../../test/support/terminal-acks.js';
import { TerminalBindings } from '../../src/peer/terminal-bindings.js';
import type { Attachment, AttachmentEnd } from '../../src/sessions/index.js';

useTypingEnds();

/** A tmux client stand-in: what is typed into it comes back 1 ms later as its echo, unless `echo` is off. */
function fakeAttachment() {
  const output = new Emitter<{ chunk: Uint8Array; offset: number }>();
  const ends = new Emitter<AttachmentEnd>();
  let produced = 0;
  const state = { echo: true, typed: 0 };
  const attachment: Attachment = {
    id: 'a-1',
    sessionName: 'main',
    get producedOffset() {
      return produced;
    },
    ackedOffset: 0,
    onOutput: (listener) => output.event(({ chunk, offset }) => listener(chunk, offset)),
    readFrom: () => new Uint8Array(0),
    ack: () => undefined,
    input(data) {
      state.typed += data.length;
      if (!state.echo) return;
      const chunk = data.slice();
      // tmux answers a moment later, as the pty's read does.
      setTimeout(() => {
        output.fire({ chunk, offset: produced });
        produced += chunk.length;
      }, 1);
    },
    resize: () => undefined,
    redraw: async () => undefined,
    setConnected: () => undefined,
    onEnd: (listener) => ends.event(listener),
    closed: new Promise(() => undefined),
    detach: () => undefined,
    prepareLane: async () => true,
    onDriveLost: () => ({ dispose: () => undefined }),
    leavePty: () => undefined,
  };
  return { attachment, state };
}

/** The agent's end of a terminal stream bound to the stand-in. */
function bound() {
  const { attachment, state } = fakeAttachment();
  return typingEnd(state, (mux, streamId) => {
    const bindings = new TerminalBindings();
    bindings.bind(attachment, mux.openStream({ id: streamId }), mux, 'device-1', 0);
    return () => bindings.dispose();
  });
}

describe('terminal bindings: keys typed', () => {
  it('at a person’s pace each key is acked by its echo, never by an ack frame alone, with no timer per key', async () => {
    vi.useFakeTimers();
    await expectKeysAckedByEcho(await bound(), true);
  });

  it('a key with no echo (a password) is still acked, within twice the delay', async () => {
    vi.useFakeTimers();
    await expectUnechoedKeyAcked(await bound());
  });
});
