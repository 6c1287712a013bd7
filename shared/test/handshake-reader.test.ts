import { describe, expect, it } from 'vitest';
import {
  HANDSHAKE_QUEUE_BYTES,
  HANDSHAKE_QUEUE_FRAMES,
  HangarError,
  createMemoryTransportPair,
  handshakeReader,
  refusedMessage,
} from '@hangar/shared';

/**
 * The handshake reader over a pair of in-memory transports: a peer that sends more than the
 * handshake has (each side sends one message and waits for the answer) is refused, and nothing
 * more of it is kept.
 */

const closedError = () => new HangarError('E_PROTOCOL', 'peer left');
/** A valid handshake message (a refusal), `padding` characters long in its error's message. */
const message = (padding = 0) => refusedMessage(new HangarError('E_PROTOCOL', 'x'.repeat(padding + 1)));
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('handshakeReader', () => {
  it('hands over what the handshake has, one message at a time', async () => {
    const pair = createMemoryTransportPair();
    const [peer, ours] = pair;
    const reader = handshakeReader(ours, closedError);
    peer.send(message());
    peer.send(message());
    await settled();
    expect((await reader.next()).kind).toBe('link.refused');
    expect((await reader.next()).kind).toBe('link.refused');
    reader.dispose();
    pair.cut();
  });

  it(`refuses a peer that sends more than ${HANDSHAKE_QUEUE_FRAMES} messages before they are read`, async () => {
    const pair = createMemoryTransportPair();
    const [peer, ours] = pair;
    const reader = handshakeReader(ours, closedError);
    for (let i = 0; i < 1000; i++) peer.send(message());
    await settled();
    await expect(reader.next()).rejects.toMatchObject({
      code: 'E_PROTOCOL',
      message: expect.stringContaining('more than the handshake has room for'),
    });
    reader.dispose();
    pair.cut();
  });

  it(`refuses a peer whose unread messages hold more than ${HANDSHAKE_QUEUE_BYTES} bytes`, async () => {
    const pair = createMemoryTransportPair();
    const [peer, ours] = pair;
    const reader = handshakeReader(ours, closedError);
    peer.send(message(HANDSHAKE_QUEUE_BYTES / 2));
    peer.send(message(HANDSHAKE_QUEUE_BYTES / 2));
    await settled();
    await expect(reader.next()).rejects.toMatchObject({
      code: 'E_PROTOCOL',
      message: expect.stringContaining('more than the handshake has room for'),
    });
    reader.dispose();
    pair.cut();
  });
});
