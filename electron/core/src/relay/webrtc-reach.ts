import { randomBytes, type KeyObject } from 'node:crypto';
import { HangarError, toHex, verifySignal, type RtcIceServer } from '@hangar/shared';
import { rawPublicKey } from '../identity/device-key.js';
import { connectOverWebRtc } from '../link/webrtc-connect.js';
import type { AccountHosts } from './account-hosts.js';
import { colonFingerprint, type ReachFallback } from './reach.js';

export interface WebRtcReachDeps {
  accountHosts: AccountHosts;
  deviceKey: KeyObject;
  deviceName: string;
  /** STUN/TURN servers with this device's TURN credentials (from the relay); none: host candidates only. */
  iceServers: () => Promise<RtcIceServer[]>;
}

/**
 * The dial-order fallback after a host's published addresses: a WebRTC link, offered through the
 * relay's signaling route (the device's socket; signed by this device's key, checked by the host),
 * hole-punched when the NATs allow (`p2p`), through TURN when not (`turn`).
 */
export function webRtcFallback(deps: WebRtcReachDeps): ReachFallback {
  return {
    name: 'webrtc',
    async dial({ name, host, how, signal: abortSignal, promising }) {
      const socket = await deps.accountHosts.signaling();
      const certFingerprint = 'pinned' in how ? how.pinned.cert_fingerprint : colonFingerprint(host.cert_fingerprint);
      const connected = await connectOverWebRtc({
        signal: async (payload) => {
          const requestId = `webrtc-${randomBytes(12).toString('hex')}`;
          const reply = await socket.request({
            toHost: host.host_id,
            recipientKey: host.public_key,
            requestId,
            payload,
          });
          // The host signed its answer to this device: a relay cannot put words in its mouth.
          const signed =
            reply.from_host.public_key === host.public_key &&
            verifySignal({
              senderKey: host.public_key,
              recipientKey: toHex(rawPublicKey(deps.deviceKey)),
              requestId,
              payload: reply.payload,
              signature: reply.signature,
            });
          if (!signed) {
            throw new HangarError(
              'E_AUTH_BAD_SIGNATURE',
              `the answer to the WebRTC offer is not signed by "${name}"'s key: the relay may be compromised`,
            );
          }
          return reply.payload;
        },
        deviceKey: deps.deviceKey,
        deviceName: deps.deviceName,
        how,
        certFingerprint,
        hostName: name,
        iceServers: await deps.iceServers(),
        ...(abortSignal ? { abortSignal } : {}),
        ...(promising ? { promising } : {}),
      });
      return { ...connected, path: () => connected.path() };
    },
  };
}
