import nodeDataChannel from 'node-datachannel';
import {
  HangarError,
  WebRtcSignal,
  answerWebRtc,
  toHangarError,
  type FrameTransport,
  type RtcConfigLike,
  type RtcIceServer,
  type RtcLibrary,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { IncomingSignal, SignalHandler } from '../relay/signals.js';
import { DEFAULT_PENDING_LIMITS } from './pending-connections.js';

/**
 * WebRTC connections that have not authenticated, at most: answered and opening their channel, or
 * open and in the signed handshake. Each holds a peer connection (its sockets, and a frame of up to
 * 1 MiB being joined), so the count lasts until the handshake is over, not only until the channel
 * opens: else a peer that opens channels and never authenticates holds as many as the relay lets
 * it signal for in a handshake's timeout. Until then each may send DEFAULT_PENDING_LIMITS'
 * bytesBeforeAuth (16 KiB), as on the TCP paths, so no 1 MiB frame is joined for it.
 */
export const MAX_PENDING_WEBRTC = 8;

export interface WebRtcAnswererOptions {
  /**
   * The link server's accept(): runs the signed handshake bound to the DTLS fingerprints, and
   * settles once it is over (authenticated, refused or timed out).
   */
  accept: (link: {
    transport: FrameTransport;
    exporter: Uint8Array;
    remoteAddress: string;
    source: string;
    /** The handshake let the device in: what it sends is no longer limited here. */
    authenticated: () => void;
  }) => Promise<void>;
  /** STUN/TURN servers (with this host's TURN credentials) as the relay handed them out; none: host candidates only. */
  iceServers?: () => RtcIceServer[];
  logger: Logger;
}

/**
 * The agent's side of the WebRTC link (the SignalHandler the relay link calls with each signal whose
 * device signature checked out): answers a device's offer with this host's SDP and candidates, then
 * hands the open channel to the link server, which lets the device in only through the same signed
 * handshake as a direct link. Who may link is decided there, not here; this caps connections that
 * have not authenticated yet (MAX_PENDING_WEBRTC), and the relay rate-limits signals per account.
 */
export class WebRtcAnswerer implements SignalHandler {
  private pending = 0;

  constructor(private readonly options: WebRtcAnswererOptions) {}

  onSignal(signal: IncomingSignal, reply: (payload: string) => void): void {
    const fail = (error: HangarError) =>
      reply(JSON.stringify({ type: 'error', error: error.toJSON() } satisfies WebRtcSignal));
    const parsed = parseOffer(signal.payload);
    if (parsed === undefined) {
      fail(new HangarError('E_BAD_REQUEST', 'this host answers WebRTC offers only ({"type":"webrtc.offer","sdp":…})'));
      return;
    }
    if (this.pending >= MAX_PENDING_WEBRTC) {
      fail(
        new HangarError('E_RATE_LIMITED', 'too many WebRTC connections opening or authenticating at once; try again', {
          retry_after_ms: 1000,
        }),
      );
      return;
    }
    this.pending++;
    const log = this.options.logger;
    const device = signal.from_device.device_id;
    const iceServers = this.options.iceServers?.() ?? [];
    log.debug(
      { device, ice_servers: iceServers.map((s) => `${s.relayType ?? 'stun'} ${s.hostname}:${s.port}`) },
      'answering a WebRTC offer',
    );
    answerWebRtc(nodeDataChannel as unknown as RtcLibrary, webRtcConfig(iceServers), parsed.sdp)
      .then(
        (answered) => {
          reply(JSON.stringify({ type: 'webrtc.answer', sdp: answered.answer } satisfies WebRtcSignal));
          log.debug(
            { device, offered: candidateTypes(parsed.sdp), answered: candidateTypes(answered.answer) },
            'WebRTC candidates',
          );
          return answered.link.then((link) => {
            const path = link.path();
            log.info({ device, path: path.kind, remote: path.remote }, 'WebRTC channel open; authenticating');
            // As on the TCP paths (PendingConnections): little may come before the handshake is
            // over, not a frame of up to 1 MiB joined in memory for each link in the handshake.
            const unlimit = link.limitReceived(DEFAULT_PENDING_LIMITS.bytesBeforeAuth, (bytes) => {
              log.debug({ device, bytes }, 'dropped a WebRTC peer that sent too much before authenticating');
              link.transport.close({ code: 'E_PROTOCOL', message: 'too much data before authentication' });
            });
            return this.options.accept({
              transport: link.transport,
              exporter: link.exporter,
              remoteAddress: `webrtc ${path.remote}`,
              source: `webrtc:${device}`,
              authenticated: unlimit,
            });
          });
        },
        (error: unknown) => {
          fail(toHangarError(error));
          throw error;
        },
      )
      .catch((error: unknown) => log.info({ device, err: toHangarError(error).message }, 'WebRTC link not opened'))
      .finally(() => this.pending--);
  }
}

/** `host 192.168.1.2:5000`… of an SDP's candidates, for the log. */
function candidateTypes(sdp: string): string[] {
  return [...sdp.matchAll(/^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)/gm)].map(
    (m) => `${m[4]} ${m[1]} ${m[2]}:${m[3]}`,
  );
}

/**
 * node-datachannel's configuration for a link. HANGAR_WEBRTC_BIND_ADDRESS binds ICE to one local
 * address (tests use 127.0.0.1: libjuice gathers no loopback candidates otherwise).
 */
export function webRtcConfig(iceServers: RtcIceServer[], policy: 'all' | 'relay' = 'all'): RtcConfigLike {
  const bind = process.env.HANGAR_WEBRTC_BIND_ADDRESS;
  const forced = process.env.HANGAR_WEBRTC_POLICY === 'relay' ? 'relay' : policy;
  return {
    iceServers,
    iceTransportPolicy: forced,
    ...(bind ? { bindAddress: bind } : {}),
  };
}

/** The offer a signal's payload holds, or undefined for anything else (not JSON, another type). */
function parseOffer(payload: string): Extract<WebRtcSignal, { type: 'webrtc.offer' }> | undefined {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const result = WebRtcSignal.safeParse(json);
  return result.success && result.data.type === 'webrtc.offer' ? result.data : undefined;
}
