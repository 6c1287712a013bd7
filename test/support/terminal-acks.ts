import {
  TERMINAL_INPUT_ACK_DELAY_MS,
  TERMINAL_OUTPUT_ACK_DELAY_MS,
  type Frame,
  type LinkStream,
  type Mux,
} from '@hangar/shared';
import { afterEach, expect, vi } from 'vitest';
import { connectMuxes } from '../../shared/test/support/mux-pair.js';

/**
 * How the end of a terminal stream that receives keys (the agent's, and the core's for a window)
 * acks them, checked from the typing end. Both run under fake timers; the stand-in on the far
 * side echoes each key 1 ms later unless its echo is off.
 */
export interface TypingEnd {
  /** The typing end's stream (its acks are on TERMINAL_OUTPUT_ACK_DELAY_MS, as CoreTerminal's). */
  stream: LinkStream;
  /** Bytes of echo the typing end has received. */
  echoed: () => number;
  /** Frames the receiving end sent, decoded. */
  frames: Frame[];
  /** The stand-in: keys it got, and whether it echoes them. */
  state: { echo: boolean; typed: number };
}

/**
 * 20 keys 200 ms apart: each is acked by its echo, an ack frame never leaves alone, and the
 * receiving end arms no ack timer per key. `eachKeyAcked`: an ack frame per key is expected too.
 */
export async function expectKeysAckedByEcho(end: TypingEnd, eachKeyAcked: boolean): Promise<void> {
  const timers = vi.spyOn(globalThis, 'setTimeout');
  for (let i = 1; i <= 20; i++) {
    end.stream.write(new TextEncoder().encode('a'));
    await vi.advanceTimersByTimeAsync(200);
    expect(end.echoed()).toBe(i);
    expect(end.stream.peerAckedOffset).toBe(i);
  }
  // Ack timers (the stand-in's echoes wait 1 ms, the typing end's acks their own delay): one per key would be 20.
  const ackTimers = timers.mock.calls.filter(([, ms]) => (ms ?? 0) > 1 && ms !== TERMINAL_OUTPUT_ACK_DELAY_MS);
  expect(ackTimers.length).toBeLessThanOrEqual(10);
  const ofStream = end.frames.filter((f) => (f.type === 'data' || f.type === 'ack') && f.stream === end.stream.id);
  if (eachKeyAcked) expect(ofStream.filter((f) => f.type === 'ack')).toHaveLength(20);
  ofStream.forEach((frame, i) => {
    if (frame.type === 'ack') expect(ofStream[i - 1]?.type).toBe('data');
  });
}

/** A key with no echo (a password) is still acked, within twice the receiving end's delay. */
export async function expectUnechoedKeyAcked(end: TypingEnd): Promise<void> {
  end.state.echo = false;
  end.stream.write(new TextEncoder().encode('secret'));
  await vi.advanceTimersByTimeAsync(10);
  expect(end.state.typed).toBe(6);
  await vi.advanceTimersByTimeAsync(2 * TERMINAL_INPUT_ACK_DELAY_MS);
  expect(end.stream.peerAckedOffset).toBe(6);
  expect(end.echoed()).toBe(0);
}

const cleanups: Array<() => void> = [];

/** For a test file of typingEnd()s: each test's links closed after it, and real timers again. */
export function useTypingEnds(): void {
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    vi.useRealTimers();
  });
}

/**
 * A typing end's mux (a client's) and the receiving end's (role agent) over a memory transport,
 * with a stream of the typing end's opened; `receive` puts the receiving end on it (given its
 * mux and the stream's id) and returns what closes it.
 */
export async function typingEnd(
  state: TypingEnd['state'],
  receive: (mux: Mux, streamId: number) => Promise<() => void> | (() => void),
): Promise<TypingEnd> {
  const { client: typing, agent: receiving, fromAgent: frames } = connectMuxes(cleanups);
  const stream = typing.openStream();
  stream.ackDelayMs = TERMINAL_OUTPUT_ACK_DELAY_MS; // as the app's terminals (CoreTerminal)
  let echoed = 0;
  stream.onData((data) => (echoed += data.length));
  cleanups.push(await receive(receiving, stream.id));
  return { stream, echoed: () => echoed, frames, state };
}
