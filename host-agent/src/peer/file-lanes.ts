import { closeSync } from 'node:fs';
import { laneRelayOptions, type NativeLanes, type Relay, type RelayOptions } from '@hangar/lane';
import type { Logger } from 'pino';
import type { AcceptedLane } from '../link/lanes.js';

/** What the agent logs of a file it sends on a lane: the fields of both lines and their messages. */
export interface FileLaneLog {
  fields: Record<string, unknown>;
  /** Logged once the relay runs. */
  sent: string;
  /** Logged at its end, with how it ended, the bytes it sent and, for an error, why. */
  ended: string;
}

/**
 * Sends the file open at `fd` on an accepted lane (its relay's `file` kind): adopts the lane's
 * socket and starts the relay, which owns `fd` from then on (closeLocal), logging `about.sent`
 * now and `about.ended` at its end, after `onEnd`. Throws with the adopted socket closed when
 * the relay cannot start; `fd` is then still the caller's to close.
 */
export function sendFileOnLane(
  native: NativeLanes,
  lane: AcceptedLane,
  fd: number,
  file: NonNullable<RelayOptions['file']>,
  log: Logger,
  about: FileLaneLog,
  onEnd?: () => void,
): Relay {
  const net = native.adoptSocket(lane.socket);
  let relay: Relay;
  try {
    relay = native.relay({
      ...laneRelayOptions(lane, net),
      localRead: fd,
      localWrite: fd,
      closeLocal: true,
      localKind: 'file',
      file,
    });
  } catch (error) {
    closeSync(net.fd);
    throw error;
  }
  log.info(about.fields, about.sent);
  void relay.ended.then((end) => {
    onEnd?.();
    log.info(
      { ...about.fields, how: end.how, bytes: end.bytesOut, ...('message' in end ? { why: end.message } : {}) },
      about.ended,
    );
  });
  return relay;
}
