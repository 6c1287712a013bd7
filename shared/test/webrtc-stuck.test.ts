import { describe, expect, it } from 'vitest';
import {
  offerWebRtc,
  webRtcStuck,
  type PeerConnectionLike,
  type RtcDataChannelLike,
  type RtcLibrary,
} from '../src/index.js';

const FINGERPRINT = Array.from({ length: 32 }, () => 'AB').join(':');
const SDP = `v=0\r\na=fingerprint:sha-256 ${FINGERPRINT}\r\n`;

/**
 * A peer connection as libdatachannel 0.24.5 leaves one in its TURN deadlock (README "Known
 * issues"): ICE connected, DTLS never done, the channel never open, and close() blocking the JS
 * thread for good (here: it records the call and throws, so a test sees it).
 */
class WedgedPeer implements PeerConnectionLike {
  static made: WedgedPeer[] = [];
  closeCalls = 0;
  channelCloseCalls = 0;
  ice = 'connected';
  pcState = 'connecting';
  private stateListener: ((state: string) => void) | undefined;

  constructor() {
    WedgedPeer.made.push(this);
  }

  close(): void {
    this.closeCalls++;
    if (this.pcState === 'connecting') throw new Error('close() on a deadlocked connection blocks forever');
    this.pcState = 'closed';
  }
  setRemoteDescription(): void {}
  setLocalDescription(): void {}
  addRemoteCandidate(): void {}
  localDescription() {
    return { type: 'offer', sdp: SDP };
  }
  createDataChannel(): RtcDataChannelLike {
    const peer = this;
    return {
      getLabel: () => 'hangar-link',
      onOpen: () => undefined,
      sendMessageBinary: () => true,
      sendMessage: () => true,
      bufferedAmount: () => 0,
      setBufferedAmountLowThreshold: () => undefined,
      onBufferedAmountLow: () => undefined,
      onMessage: () => undefined,
      onClosed: () => undefined,
      onError: () => undefined,
      isOpen: () => false,
      close: () => {
        peer.channelCloseCalls++;
        if (peer.pcState === 'connecting') throw new Error('a channel close on a deadlocked connection blocks too');
      },
    };
  }
  onDataChannel(): void {}
  onStateChange(listener: (state: string) => void): void {
    this.stateListener = listener;
  }
  onGatheringStateChange(): void {}
  gatheringState(): string {
    return 'complete';
  }
  state(): string {
    return this.pcState;
  }
  iceState(): string {
    return this.ice;
  }
  rtt(): number {
    return 0;
  }
  getSelectedCandidatePair() {
    return null;
  }
  /** The handshake finally failed (it was slow, not deadlocked). */
  settle(): void {
    this.pcState = 'failed';
    this.stateListener?.('failed');
  }
}

const lib: RtcLibrary = { PeerConnection: WedgedPeer };

describe('a WebRTC connection deadlocked inside the library (ICE connected, DTLS never done)', () => {
  it('is held back, not closed, when its open times out; no new attempt starts meanwhile; once it settles it is closed and WebRTC is usable again', async () => {
    const offering = await offerWebRtc(lib, { iceServers: [] });
    const failure = await offering.connect(SDP, 50).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ code: 'E_HOST_UNREACHABLE' });
    const wedged = WedgedPeer.made[0]!;
    // Neither the connection nor its channel was closed: either call would have blocked the JS thread.
    expect(wedged.closeCalls).toBe(0);
    expect(wedged.channelCloseCalls).toBe(0);
    expect(webRtcStuck()).toBe(true);

    // A new attempt would block on the library's lock: refused at once, saying why and what to do.
    await expect(offerWebRtc(lib, { iceServers: [] })).rejects.toMatchObject({
      code: 'E_UNAVAILABLE',
      message: expect.stringMatching(/stuck in this process.*Known issues.*restart the app/),
    });
    expect(WedgedPeer.made).toHaveLength(1);

    // It was only slow: it settles, is closed then, and WebRTC is usable again.
    wedged.settle();
    await expect.poll(() => webRtcStuck(), { timeout: 5_000 }).toBe(false);
    expect(wedged.closeCalls).toBe(1);
    const next = await offerWebRtc(lib, { iceServers: [] });
    expect(WedgedPeer.made).toHaveLength(2);
    WedgedPeer.made[1]!.ice = 'checking';
    next.abort();
  });

  it('an attempt abandoned before ICE connected is closed at once, as before', async () => {
    const offering = await offerWebRtc(lib, { iceServers: [] });
    const peer = WedgedPeer.made.at(-1)!;
    peer.ice = 'checking';
    peer.pcState = 'new';
    offering.abort();
    expect(peer.closeCalls).toBe(1);
    expect(webRtcStuck()).toBe(false);
  });
});
