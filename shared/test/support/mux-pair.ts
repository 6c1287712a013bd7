import {
  createMemoryTransportPair,
  decodeFrame,
  encodeFrame,
  Mux,
  type Frame,
  type MemoryTransportOptions,
  type MuxOptions,
} from '@hangar/shared';

/**
 * A client's mux and an agent's over a memory transport pair; `cleanups` gets what disposes of
 * both and cuts the pair (the test file runs its cleanups after each test).
 */
export function connectMuxes(
  cleanups: Array<() => void>,
  options: { mux?: Omit<MuxOptions, 'role'>; transport?: MemoryTransportOptions } = {},
) {
  const pair = createMemoryTransportPair(options.transport);
  const client = new Mux(pair[0], { role: 'client', ...options.mux });
  const agent = new Mux(pair[1], { role: 'agent', ...options.mux });
  cleanups.push(() => {
    client.dispose();
    agent.dispose();
    pair.cut();
  });
  /** Sends raw frames to the agent as if the client's mux had (bypassing its checks). */
  const inject = (frame: Frame | Uint8Array) => pair[0].send(frame instanceof Uint8Array ? frame : encodeFrame(frame));
  /** Frames the agent sends, decoded, as the client receives them. */
  const fromAgent: Frame[] = [];
  pair[0].onFrame((bytes) => fromAgent.push(decodeFrame(bytes)));
  return { pair, client, agent, inject, fromAgent };
}

/** Opens one stream on both ends, as a session attach does after its control exchange. */
export function openBoth(client: Mux, agent: Mux, options: { window?: number } = {}) {
  const local = client.openStream(options);
  const remote = agent.openStream({ ...options, id: local.id });
  return { local, remote };
}
