import { AGENT_VERSION } from '../version.js';

/**
 * Signaling through the relay (its opaque, end-to-end signed blobs): the seam the WebRTC link
 * fills next. A handler gets each signal whose signature checked out against the sending
 * device's key, and answers on the same request id with `reply` (signed by the relay link).
 */

export interface IncomingSignal {
  request_id: string;
  from_device: { device_id: string; public_key: string };
  payload: string;
}

export interface SignalHandler {
  onSignal(signal: IncomingSignal, reply: (payload: string) => void): void;
}

/**
 * Until the WebRTC link lands: every signal is answered at once with an error payload, so that
 * a device is told why instead of waiting for the relay's timeout.
 */
export const noWebRtcYet: SignalHandler = {
  onSignal(_signal, reply) {
    reply(
      JSON.stringify({
        type: 'error',
        error: {
          code: 'E_UNAVAILABLE',
          message:
            `this host does not speak WebRTC yet (hangar-agent ${AGENT_VERSION}); ` +
            'reach it at the direct or tailnet addresses it publishes',
        },
      }),
    );
  },
};
