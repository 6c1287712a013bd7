import { afterEach, describe, expect, it } from 'vitest';
import nodeDataChannel from 'node-datachannel';
import { pino } from 'pino';
import {
  WebRtcSignal,
  answerWebRtc,
  offerWebRtc,
  type HangarError,
  type RtcLibrary,
  type WebRtcLink,
} from '@hangar/shared';
import { WebRtcAnswerer } from '../../../../host-agent/src/link/webrtc-answerer.js';
import { connectOverWebRtc } from '../../src/link/webrtc-connect.js';
import { Cleanup, eventually, pairDevice, startTestAgent } from './fixture.js';

/**
 * The link over WebRTC is bound to the DTLS certificates both ends used: a relay (this test's
 * signaling double) that answers the device itself and offers to the agent itself, passing the
 * link's frames between its two channels, makes each side hash other fingerprints, so the signed
 * handshake fails and nothing gets through. The same double passing the SDP untouched links fine.
 */

process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.1';
const lib = nodeDataChannel as unknown as RtcLibrary;
const config = { iceServers: [], bindAddress: '127.0.0.1' };

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function pairedAgent() {
  const agent = await startTestAgent(cleanup);
  const { deviceKey, pinned } = await pairDevice(agent);
  const answerer = new WebRtcAnswerer({
    accept: (link) => agent.server.accept(link),
    logger: pino({ level: 'silent' }),
  });
  /** What the relay hands the agent: the device's signed offer; the agent's reply comes back. */
  const toAgent = (payload: string) =>
    new Promise<string>((resolve) =>
      answerer.onSignal(
        { request_id: 'req-00000000', from_device: { device_id: 'dev_test', public_key: 'ab' }, payload },
        resolve,
      ),
    );
  /** The device's WebRTC link to the agent with its pins, its signals carried by `signal`. */
  const dial = (signal: (payload: string) => Promise<string>) =>
    connectOverWebRtc({
      signal,
      deviceKey,
      deviceName: 'laptop',
      how: { pinned },
      certFingerprint: pinned.cert_fingerprint,
      hostName: 'mini',
      iceServers: [],
    });
  return { agent, deviceKey, pinned, toAgent, dial };
}

describe('WebRTC link handshake bound to the DTLS fingerprints', () => {
  it('links when the relay passes the SDP as it is', async () => {
    const { agent, pinned, toAgent, dial } = await pairedAgent();
    const linked = await dial(toAgent);
    cleanup.add(() => linked.transport.close());
    expect(linked.agent_key).toBe(pinned.agent_key);
    expect(linked.path().kind).toBe('p2p');
    await eventually(() => agent.links.length === 2);
  });

  it('is refused when the relay swaps the SDP and sits in the middle', async () => {
    const { agent, toAgent, dial } = await pairedAgent();
    const middle: WebRtcLink[] = [];
    cleanup.add(() => middle.forEach((link) => link.transport.close()));
    const swapping = async (payload: string): Promise<string> => {
      const offer = WebRtcSignal.parse(JSON.parse(payload));
      if (offer.type !== 'webrtc.offer') throw new Error('expected an offer');
      // Its own answer to the device, its own offer to the agent.
      const towardDevice = await answerWebRtc(lib, config, offer.sdp);
      const towardAgent = await offerWebRtc(lib, config);
      const reply = WebRtcSignal.parse(
        JSON.parse(await toAgent(JSON.stringify({ type: 'webrtc.offer', sdp: towardAgent.offer }))),
      );
      if (reply.type !== 'webrtc.answer') throw new Error('expected an answer');
      void Promise.all([towardDevice.link, towardAgent.connect(reply.sdp)]).then(([device, host]) => {
        middle.push(device, host);
        device.transport.onFrame((frame) => host.transport.send(frame));
        host.transport.onFrame((frame) => device.transport.send(frame));
        device.transport.onClose((reason) => host.transport.close(reason));
        host.transport.onClose((reason) => device.transport.close(reason));
      });
      return JSON.stringify({ type: 'webrtc.answer', sdp: towardDevice.answer });
    };
    const error = await dial(swapping).then(
      () => undefined,
      (e: unknown) => e as HangarError,
    );
    expect(error?.code).toBe('E_AUTH_BAD_SIGNATURE');
    expect(middle).toHaveLength(2); // the middle did connect both ways: only the binding stopped it
    expect(agent.links).toHaveLength(1); // the pairing connection only
  });
});
