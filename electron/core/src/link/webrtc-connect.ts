import type { KeyObject } from 'node:crypto';
import {
  HangarError,
  WebRtcSignal,
  offerWebRtc,
  lastWebRtcPeerClosedAt,
  openWebRtcPeers,
  refusedMessage,
  webRtcHeld,
  webRtcPaused,
  toHangarError,
  type RtcIceServer,
  type RtcLibrary,
  type WebRtcLink,
  type WebRtcPath,
  WEBRTC_OPEN_TIMEOUT_MS,
} from '@hangar/shared';
import { deviceSigner } from '../identity/device-key.js';
import { clientHandshake, withDeadline } from './client-handshake.js';
import type { ConnectedHost } from './connect.js';

export interface WebRtcConnectOptions {
  /** Sends the offer through the relay (signed by this device) and resolves with the host's reply payload. */
  signal: (payload: string) => Promise<string>;
  deviceKey: KeyObject;
  deviceName: string;
  /** Auth with these pins, or pair with an enrollment's secret (the first link). */
  how:
    { pinned: { agent_key: string; cert_fingerprint: string } } | { enrollment: { token_id: string; secret: string } };
  /**
   * The agent's TLS certificate fingerprint (`AB:CD:…`): pinned, or as the account lists it. Not on
   * this path, but in the transcript both sign: an agent with another certificate fails the handshake.
   */
  certFingerprint: string;
  hostName: string;
  iceServers: RtcIceServer[];
  /** 'relay': TURN only (tests; a network that must not hole-punch). */
  policy?: 'all' | 'relay';
  timeoutMs?: number;
  /** Another path won the race (relay/dial-race.ts): the connection is closed, mid-ICE too, and the dial fails. */
  abortSignal?: AbortSignal;
  /** Called once the answer came and both ends have a TURN candidate: a path will very likely form. */
  promising?: () => void;
}

export type WebRtcConnected = ConnectedHost & { path: () => WebRtcPath };

const DEFAULT_TIMEOUT_MS = 15_000;

/** A TURN (relayed) candidate in an SDP: that end reached its TURN server over UDP. */
const RELAY_CANDIDATE = /^a=candidate:\S+ \d+ udp \d+ \S+ \d+ typ relay/im;

/**
 * The device's side of a WebRTC link: offer through the relay's signaling route, the agent's answer
 * back, the channel, then the same signed handshake as a direct link, bound to both DTLS
 * fingerprints (webrtc.ts) instead of a TLS exporter. The device always offers: no glare.
 */
export async function connectOverWebRtc(options: WebRtcConnectOptions): Promise<WebRtcConnected> {
  try {
    return await attempt(options);
  } catch (error) {
    // libdatachannel now and then closes a new connection before its answer: one more exchange.
    if (toHangarError(error).details?.retry !== true || options.abortSignal?.aborted) throw error;
    return attempt(options);
  }
}

let used = false;

/**
 * node-datachannel (libdatachannel and its bindings: ~18 ms of CPU to load) is loaded by the
 * first WebRTC attempt, not with the core: most commands that start a core never try one.
 */
let library: Promise<typeof import('node-datachannel').default> | undefined;
const loadLibrary = () => (library ??= import('node-datachannel').then((module) => module.default));

/**
 * Lets the process exit: once every peer connection closed (at most 2 s), the library's threads
 * stop (node-datachannel's cleanup(), which must not run while connections are still closing).
 */
export async function releaseWebRtc(): Promise<void> {
  if (!used) return;
  // A connection stalled after ICE (webrtc.ts webRtcPaused): the library may be deadlocked, and its
  // cleanup() would then wait forever. Left to the process's end (webRtcHoldsProcess).
  const deadline = Date.now() + 2_000;
  while (openWebRtcPeers() > 0 && !webRtcPaused() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (webRtcPaused()) return;
  // close() returns before its threads are done with the connection: a second after the last
  // close (an attempt that failed, or lost to another path, may have closed one a moment ago).
  const settle = Math.max(100, lastWebRtcPeerClosedAt() + 1_000 - Date.now());
  await new Promise((resolve) => setTimeout(resolve, settle));
  if (webRtcPaused()) return;
  used = false;
  (await loadLibrary()).cleanup();
}

/**
 * Whether this process holds a WebRTC connection that stalled after ICE (webrtc.ts webRtcPaused):
 * the library's threads may be deadlocked, so neither its cleanup() nor Node's own teardown (which
 * closes what it still holds) may run. A process that ends once its work is done must end with
 * process.exit() when this is true (the library's threads keep its event loop alive).
 */
export function webRtcHoldsProcess(): boolean {
  return webRtcPaused();
}

/** How long a new attempt waits for another connection's DTLS handshake (webRtcPaused) before giving up. */
const PAUSE_WAIT_MS = 5_000;

/**
 * Resolves once no device connection is mid-handshake or held; fails at once while one is held
 * (webRtcHeld: it may never end, and the dial's other way, the relay's splice, should not wait its
 * head start for nothing), after PAUSE_WAIT_MS when one is still mid-handshake, or on abort.
 */
async function unpaused(abortSignal: AbortSignal | undefined): Promise<void> {
  const deadline = Date.now() + PAUSE_WAIT_MS;
  while (webRtcPaused()) {
    if (abortSignal?.aborted)
      throw new HangarError('E_UNAVAILABLE', 'WebRTC attempt abandoned: another path opened first');
    if (webRtcHeld()) {
      throw new HangarError(
        'E_UNAVAILABLE',
        'WebRTC is paused in this process: a connection it gave up on stalled after ICE connected (a known ' +
          'WebRTC library deadlock, README "Known issues"); links go through the relay until that connection ' +
          'ends or Hangar restarts',
      );
    }
    if (Date.now() >= deadline) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `WebRTC is paused in this process: another connection's DTLS handshake did not finish in ` +
          `${PAUSE_WAIT_MS / 1000} s (README "Known issues"); this link goes through the relay`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function attempt(options: WebRtcConnectOptions): Promise<WebRtcConnected> {
  await unpaused(options.abortSignal);
  used = true;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const bind = process.env.HANGAR_WEBRTC_BIND_ADDRESS;
  const policy = process.env.HANGAR_WEBRTC_POLICY === 'relay' ? 'relay' : (options.policy ?? 'all');
  const offering = await offerWebRtc((await loadLibrary()) as unknown as RtcLibrary, {
    iceServers: options.iceServers,
    iceTransportPolicy: policy,
    ...(bind ? { bindAddress: bind } : {}),
  });
  let link: WebRtcLink | undefined;
  // Aborted: the channel (open or not) and its connection close now, so nothing is left mid-ICE
  // when the process releases the library; the awaits below then fail at once.
  let stopOnAbort = () => undefined as void;
  const aborted = new Promise<never>((_, reject) => {
    const stop = (stopOnAbort = () => {
      if (link) link.transport.close({ code: 'closed', message: 'another path opened first' });
      else offering.abort();
      reject(new HangarError('E_UNAVAILABLE', 'WebRTC attempt abandoned: another path opened first'));
    });
    if (options.abortSignal?.aborted) stop();
    else options.abortSignal?.addEventListener('abort', stop, { once: true });
  });
  aborted.catch(() => undefined);
  const orAbort = <T>(promise: Promise<T>) => (options.abortSignal ? Promise.race([promise, aborted]) : promise);
  try {
    const replied = await orAbort(
      options.signal(JSON.stringify({ type: 'webrtc.offer', sdp: offering.offer } satisfies WebRtcSignal)),
    );
    let answer: WebRtcSignal;
    try {
      answer = WebRtcSignal.parse(JSON.parse(replied));
    } catch {
      throw new HangarError('E_PROTOCOL', `"${options.hostName}" answered the WebRTC offer with something else`);
    }
    if (answer.type === 'error') throw HangarError.from(answer.error);
    if (answer.type !== 'webrtc.answer') throw new HangarError('E_PROTOCOL', 'expected a WebRTC answer');
    if (RELAY_CANDIDATE.test(offering.offer) && RELAY_CANDIDATE.test(answer.sdp)) options.promising?.();
    const connecting = offering.connect(
      answer.sdp,
      Math.max(1, Math.min(WEBRTC_OPEN_TIMEOUT_MS, deadline - Date.now())),
    );
    // Opened after an abort: closed here (the abort found no link to close).
    connecting.then(
      (late) =>
        options.abortSignal?.aborted && late.transport.close({ code: 'closed', message: 'another path opened first' }),
      () => undefined,
    );
    link = await orAbort(connecting);
    const transport = link.transport;
    const how = options.how;
    const handshake = clientHandshake({
      transport,
      exporter: link.exporter,
      certFingerprint: options.certFingerprint,
      device: deviceSigner(options.deviceKey),
      deviceName: options.deviceName,
      mode:
        'pinned' in how
          ? {
              kind: 'auth',
              agentKey: how.pinned.agent_key,
              keyChanged: (seen) =>
                new HangarError(
                  'E_AUTH_HOST_KEY_CHANGED',
                  `host "${options.hostName}" presented a different key over WebRTC than the one pinned ` +
                    `(seen ${seen}, expected ${how.pinned.agent_key}); someone may be intercepting the connection`,
                  { seen, expected: how.pinned.agent_key },
                ),
            }
          : { kind: 'pair', enrollment: how.enrollment },
      host: { name: options.hostName, address: 'webrtc' },
    });
    const { agentKey, host } = await orAbort(
      withDeadline(
        handshake,
        deadline,
        `"${options.hostName}" opened a WebRTC channel but did not finish the handshake in time`,
      ),
    );
    const opened = link;
    return {
      transport,
      agent_key: agentKey,
      cert_fingerprint: options.certFingerprint,
      host,
      path: () => opened.path(),
    };
  } catch (error) {
    const failure = toHangarError(error);
    if (link && !link.transport.closed) {
      if (failure.code === 'E_AUTH_BAD_SIGNATURE' || failure.code === 'E_PROTOCOL' || failure.code === 'E_TIMEOUT') {
        link.transport.send(refusedMessage(failure));
      }
      link.transport.close({ code: failure.code, message: 'handshake failed' });
    } else {
      offering.abort();
    }
    throw failure;
  } finally {
    options.abortSignal?.removeEventListener('abort', stopOnAbort);
  }
}
