import { afterAll, afterEach, describe, expect, it } from 'vitest';
import nodeDataChannel from 'node-datachannel';
import { pino } from 'pino';
import { offerWebRtc, WebRtcSignal, type CloseReason, type RtcLibrary, type WebRtcLink } from '@hangar/shared';
import { MAX_PENDING_WEBRTC, WebRtcAnswerer } from '../../src/link/webrtc-answerer.js';

/**
 * The agent's WebRTC answerer as the relay link drives it (one signal per offer, its reply the
 * answer), with real node-datachannel peers on loopback. Its accept stands in for the link server's:
 * each link stays in the handshake until the test settles it, as a peer that never authenticates
 * does until the handshake's timeout.
 */

const lib = nodeDataChannel as unknown as RtcLibrary;
// libjuice gathers no loopback candidate unless bound to it (webRtcConfig reads this).
const savedBind = process.env.HANGAR_WEBRTC_BIND_ADDRESS;
process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.1';
const links: WebRtcLink[] = [];

afterEach(() => {
  for (const link of links.splice(0)) link.transport.close();
});

afterAll(async () => {
  if (savedBind === undefined) delete process.env.HANGAR_WEBRTC_BIND_ADDRESS;
  else process.env.HANGAR_WEBRTC_BIND_ADDRESS = savedBind;
  // Let the channels and peer connections settle before the library's threads go (as webrtc-transport.test.ts).
  await new Promise((resolve) => setTimeout(resolve, 200));
});

function answerer() {
  const inHandshake: { transport: WebRtcLink['transport']; settle: () => void; authenticated: () => void }[] = [];
  const waiters: (() => void)[] = [];
  const answering = new WebRtcAnswerer({
    accept: (link) =>
      new Promise<void>((settle) => {
        inHandshake.push({ transport: link.transport, settle, authenticated: link.authenticated });
        waiters.splice(0).forEach((wake) => wake());
      }),
    logger: pino({ level: 'silent' }),
  });
  /** The device's side: an offer through a signal; its link once open, or the error the agent replied. */
  const dial = async (n: number): Promise<WebRtcLink | { error: string }> => {
    const offering = await offerWebRtc(lib, { iceServers: [], bindAddress: '127.0.0.1' });
    const reply = await new Promise<WebRtcSignal>((resolve) =>
      answering.onSignal(
        {
          request_id: `req_${n}`,
          from_device: { device_id: 'dev_unpaired', public_key: '00'.repeat(32) },
          payload: JSON.stringify({ type: 'webrtc.offer', sdp: offering.offer }),
        },
        (payload) => resolve(WebRtcSignal.parse(JSON.parse(payload))),
      ),
    );
    if (reply.type !== 'webrtc.answer') {
      offering.abort();
      return { error: reply.type === 'error' ? reply.error.code : reply.type };
    }
    const link = await offering.connect(reply.sdp);
    links.push(link);
    return link;
  };
  /** Resolves once `count` links have reached the handshake. */
  const handshaking = async (count: number) => {
    while (inHandshake.length < count) await new Promise<void>((wake) => waiters.push(wake));
  };
  return { dial, handshaking, inHandshake };
}

describe('WebRTC links that do not authenticate (an unpaired peer)', () => {
  it(`at most ${MAX_PENDING_WEBRTC} are held, opening or in the handshake; one that ends makes room`, async () => {
    const agent = answerer();
    for (let i = 0; i < MAX_PENDING_WEBRTC; i++) {
      expect(await agent.dial(i)).not.toHaveProperty('error');
      await agent.handshaking(i + 1);
    }
    // All open, none authenticated: one more is refused before anything is allocated for it.
    expect(await agent.dial(MAX_PENDING_WEBRTC)).toEqual({ error: 'E_RATE_LIMITED' });
    // One handshake ends (refused or timed out): the next is answered.
    const ended = agent.inHandshake[0]!;
    ended.transport.close();
    ended.settle();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await agent.dial(MAX_PENDING_WEBRTC + 1)).not.toHaveProperty('error');
    await agent.handshaking(MAX_PENDING_WEBRTC + 1);
    for (const link of agent.inHandshake) {
      link.transport.close();
      link.settle();
    }
  }, 30_000);
});

describe('what a WebRTC peer may send before it authenticates', () => {
  /** The agent's side of one link in the handshake, the device's link, and what each side saw. */
  async function linked() {
    const agent = answerer();
    const device = await agent.dial(0);
    if ('error' in device) throw new Error(device.error);
    await agent.handshaking(1);
    const atAgent = agent.inHandshake[0]!;
    const frames: number[] = [];
    let arrived!: () => void;
    const frameArrived = new Promise<'a frame arrived'>((resolve) => (arrived = () => resolve('a frame arrived')));
    atAgent.transport.onFrame((frame) => {
      frames.push(frame.length);
      arrived();
    });
    const closed = new Promise<CloseReason>((resolve) => device.transport.onClose(resolve));
    return { device, atAgent, frames, closed, frameArrived };
  }

  it('a frame over the 16 KiB allowance closes the link, as on TCP; none is joined for it', async () => {
    const { device, atAgent, frames, closed, frameArrived } = await linked();
    device.transport.send(new Uint8Array(256 * 1024).fill(7));
    expect(await Promise.race([closed, frameArrived])).toEqual({
      code: 'E_PROTOCOL',
      message: 'too much data before authentication',
    });
    expect(frames).toEqual([]);
    atAgent.settle();
  }, 30_000);

  it('once the handshake let the device in, frames of any size up to the link limit pass', async () => {
    const { device, atAgent, frames } = await linked();
    device.transport.send(new Uint8Array(1024).fill(1)); // a handshake message's size
    atAgent.authenticated();
    device.transport.send(new Uint8Array(256 * 1024).fill(7));
    while (frames.length < 2 && !device.transport.closed) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(frames).toEqual([1024, 256 * 1024]);
    expect(atAgent.transport.closed).toBe(false);
    atAgent.settle();
  }, 30_000);
});
