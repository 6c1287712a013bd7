import { afterEach, describe, expect, it } from 'vitest';
import { Mux, type FrameTransport } from '@hangar/shared';
import { connectToHost, LINK_WEBSOCKET_ENV } from '../../src/link/connect.js';
import { Cleanup, eventually, newDeviceKey, startTestAgent, type TestAgent } from './fixture.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function pairAndLink(agent: TestAgent) {
  const deviceKey = newDeviceKey();
  const paired = await connectToHost({
    address: agent.address,
    deviceKey,
    deviceName: 'laptop',
    pairingCode: agent.issueCode(),
  });
  cleanup.add(() => paired.transport.close());
  return paired;
}

/** Sends `bytes` on a stream from the client's mux to the agent's, and resolves with what arrived. */
async function carry(client: FrameTransport, server: FrameTransport, bytes: Uint8Array): Promise<Uint8Array> {
  const near = new Mux(client, { role: 'client' });
  const far = new Mux(server, { role: 'agent' });
  cleanup.add(() => near.close());
  cleanup.add(() => far.close());
  const window = 4 * 1024 * 1024;
  const receiving = far.openStream({ id: 1, window });
  const parts: Uint8Array[] = [];
  let received = 0;
  const arrived = new Promise<void>((resolve) =>
    receiving.onData((data) => {
      parts.push(data.slice());
      received += data.length;
      if (received === bytes.length) resolve();
    }),
  );
  // Frames of 1 MiB less their head: each crosses many TLS records and socket reads.
  const sending = near.openStream({ id: 1, window, maxFrameBytes: 1024 * 1024 });
  sending.write(bytes);
  await arrived;
  return Buffer.concat(parts);
}

describe('how the link travels', () => {
  it('goes straight on TLS when the agent offers it, and carries big frames intact', async () => {
    const agent = await startTestAgent(cleanup);
    const linked = await pairAndLink(agent);
    expect(linked.carrier).toBe('tls');
    // Where its lanes would go: the agent's address and port as the link reached them.
    expect(linked.tcp).toEqual({ host: '127.0.0.1', port: Number(agent.address.split(':')[1]) });
    await eventually(() => agent.links.length === 1);
    const bytes = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 7919) % 251);
    const arrived = await carry(linked.transport, agent.links[0]!.transport, bytes);
    expect(Buffer.compare(arrived, bytes)).toBe(0);
  });

  it('uses the WebSocket when the core asks for it, as with an agent from before the raw link', async () => {
    const agent = await startTestAgent(cleanup);
    process.env[LINK_WEBSOCKET_ENV] = '1';
    cleanup.add(() => delete process.env[LINK_WEBSOCKET_ENV]);
    const linked = await pairAndLink(agent);
    expect(linked.carrier).toBe('websocket');
    await eventually(() => agent.links.length === 1);
    const bytes = new Uint8Array(512 * 1024 + 3).map((_, i) => i % 253);
    const arrived = await carry(linked.transport, agent.links[0]!.transport, bytes);
    expect(Buffer.compare(arrived, bytes)).toBe(0);
  });
});
