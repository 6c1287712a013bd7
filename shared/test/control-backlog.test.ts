import { afterEach, describe, expect, it } from 'vitest';
import {
  LINK_BACKLOG_CLOSE_CODE,
  Mux,
  createMemoryTransportPair,
  decodeFrame,
  encodeFrame,
  type CloseReason,
} from '@hangar/shared';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function agentWithRawPeer(highWater = 1024) {
  const pair = createMemoryTransportPair({ highWater });
  const [peer, agentEnd] = pair;
  const agent = new Mux(agentEnd, {
    role: 'agent',
    transportHighWater: highWater,
    maxControlBacklog: { bytes: 1024 * 1024, frames: 200 },
  });
  cleanups.push(() => {
    agent.dispose();
    pair.cut();
  });
  const received: ReturnType<typeof decodeFrame>[] = [];
  peer.onFrame((bytes) => received.push(decodeFrame(bytes)));
  return { peer, agentEnd, agent, received };
}

describe('answers a peer asks for but does not read', () => {
  it('close its link with E_LINK_BACKLOG past the limit, and the peer reads why after the answers', async () => {
    const { peer, agentEnd, agent, received } = agentWithRawPeer();
    const closed = new Promise<CloseReason>((resolve) => agent.onClose(resolve));
    agentEnd.silence(); // nothing the agent sends arrives: a peer that stopped reading
    for (let nonce = 0; nonce < 1000; nonce++) peer.send(encodeFrame({ type: 'ping', nonce }));
    expect(await closed).toMatchObject({
      code: LINK_BACKLOG_CLOSE_CODE,
      message: expect.stringMatching(/not reading/),
    });

    agentEnd.resume();
    const lastWords = await new Promise<CloseReason>((resolve) => peer.onClose(resolve));
    expect(lastWords.code).toBe(LINK_BACKLOG_CLOSE_CODE);
    const pongs = received.filter((frame) => frame.type === 'pong').length;
    // ~114 pongs fill the 1 KiB high-water mark, then 200 more are allowed.
    expect(pongs).toBeGreaterThan(200);
    expect(pongs).toBeLessThan(400);
    expect(received.at(-1)).toMatchObject({ type: 'close', stream: 0 });
  });

  it('never close the link of a peer that keeps reading, however long it goes on', async () => {
    const { peer, agent, received } = agentWithRawPeer();
    const pongs = () => received.filter((frame) => frame.type === 'pong').length;
    // Each lot's answers pass the high-water mark (150 pongs, 1,350 bytes), so ~36 count towards
    // the limit of 200 frames, but the peer reads them before asking again: 40 lots never add up.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 150; i++) peer.send(encodeFrame({ type: 'ping', nonce: round * 150 + i }));
      const deadline = Date.now() + 5000;
      while (pongs() < (round + 1) * 150 && Date.now() < deadline)
        await new Promise<void>((r) => setTimeout(() => r(), 1));
    }
    expect(pongs()).toBe(6000);
    expect(agent.closed).toBe(false);
  });
});
