import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createMemoryTransportPair,
  decodeFrame,
  Emitter,
  Mux,
  TERMINAL_INPUT_ACK_DELAY_MS,
  TERMINAL_OUTPUT_ACK_DELAY_MS,
  type Frame,
} from '@hangar/shared';
import { TerminalBindings } from '../../src/peer/terminal-bindings.js';
import type { Attachment, AttachmentEnd } from '../../src/sessions/index.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  vi.useRealTimers();
});

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
  };
  return { attachment, state };
}

/** A client's mux and the agent's, the agent's end of a terminal stream bound to the stand-in. */
function bound() {
  const pair = createMemoryTransportPair();
  const client = new Mux(pair[0], { role: 'client' });
  const agent = new Mux(pair[1], { role: 'agent' });
  const bindings = new TerminalBindings();
  cleanups.push(() => {
    bindings.dispose();
    client.dispose();
    agent.dispose();
    pair.cut();
  });
  const fromAgent: Frame[] = [];
  pair[0].onFrame((bytes) => fromAgent.push(decodeFrame(bytes)));
  const local = client.openStream();
  local.ackDelayMs = TERMINAL_OUTPUT_ACK_DELAY_MS; // as the app's terminals (CoreTerminal)
  const { attachment, state } = fakeAttachment();
  bindings.bind(attachment, agent.openStream({ id: local.id }), agent, 'device-1', 0);
  let echoed = 0;
  local.onData((data) => (echoed += data.length));
  return { local, state, fromAgent, echoed: () => echoed };
}

describe('terminal bindings: keys typed', () => {
  it('at a person’s pace each key is acked by its echo, never by an ack frame alone, with no timer per key', async () => {
    vi.useFakeTimers();
    const { local, fromAgent, echoed } = bound();
    const timers = vi.spyOn(globalThis, 'setTimeout');
    for (let i = 1; i <= 20; i++) {
      local.write(new TextEncoder().encode('a'));
      await vi.advanceTimersByTimeAsync(200);
      expect(echoed()).toBe(i);
      expect(local.peerAckedOffset).toBe(i);
    }
    // The agent's ack timers (the stand-in's echoes wait 1 ms, the client's acks its own delay):
    // one per key would be 20.
    const ackTimers = timers.mock.calls.filter(([, ms]) => (ms ?? 0) > 1 && ms !== TERMINAL_OUTPUT_ACK_DELAY_MS);
    expect(ackTimers.length).toBeLessThanOrEqual(10);
    const ofStream = fromAgent.filter((f) => (f.type === 'data' || f.type === 'ack') && f.stream === local.id);
    expect(ofStream.filter((f) => f.type === 'ack')).toHaveLength(20);
    ofStream.forEach((frame, i) => {
      if (frame.type === 'ack') expect(ofStream[i - 1]?.type).toBe('data');
    });
  });

  it('a key with no echo (a password) is still acked, within twice the delay', async () => {
    vi.useFakeTimers();
    const { local, state, echoed } = bound();
    state.echo = false;
    local.write(new TextEncoder().encode('secret'));
    await vi.advanceTimersByTimeAsync(10);
    expect(state.typed).toBe(6);
    await vi.advanceTimersByTimeAsync(2 * TERMINAL_INPUT_ACK_DELAY_MS);
    expect(local.peerAckedOffset).toBe(6);
    expect(echoed()).toBe(0);
  });
});
