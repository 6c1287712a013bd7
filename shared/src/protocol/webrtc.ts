import { z } from 'zod';
import { ErrorShapeSchema } from './control.js';

/** An SDP with its candidates (gathered before it is sent): a few KiB; the signal payload caps it anyway. */
const Sdp = z
  .string()
  .min(1)
  .max(32 * 1024, 'sdp must be at most 32 KiB');

/**
 * What a device and a host say through the relay's signaling route to open a WebRTC link: the
 * device's offer, the host's answer or why not (payloads signed end to end; the relay sees them,
 * and the link handshake then proves the DTLS fingerprints in them were the ones both sides used).
 */
export const WebRtcSignal = z.discriminatedUnion('type', [
  z.object({ type: z.literal('webrtc.offer'), sdp: Sdp }),
  z.object({ type: z.literal('webrtc.answer'), sdp: Sdp }),
  z.object({ type: z.literal('error'), error: ErrorShapeSchema }),
]);
export type WebRtcSignal = z.infer<typeof WebRtcSignal>;
