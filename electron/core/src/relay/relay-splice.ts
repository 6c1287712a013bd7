import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import {
  HangarError,
  SPLICE_DEVICE_PATH,
  SPLICE_PROTOCOL,
  relayOrigin,
  toHangarError,
  type ErrorShape,
} from '@hangar/shared';
import type { KeyObject } from 'node:crypto';
import { connectToHost, type ConnectOptions, type ConnectedHost } from '../link/connect.js';
import type { ReachFallback } from './reach.js';
import type { RelayAccount } from './relay-account.js';

/**
 * The relayed path (PROTOCOL.md "Relayed links"), for a host none of whose published addresses
 * answers (and, once it lands, no WebRTC path either): the relay joins this connection with one
 * the host's agent opens for it and copies bytes between them. The link inside is the one a
 * direct dial makes, TLS with the pinned certificate and the signed handshake bound to it, so the
 * relay sees only ciphertext and cannot complete the link itself.
 */
export interface SpliceDial {
  relayUrl: string;
  /** A fresh access token of this device (the relay checks the device is approved and the host is the account's). */
  accessToken: () => Promise<string>;
  hostId: string;
}

/** How a link that runs through a splice names its path in messages and in `Dialed.address`. */
export function splicePathName(relayUrl: string): string {
  return `relay ${relayOrigin(relayUrl)}`;
}

/** Connects like connectToHost, through a splice: pins (or an enrollment's secret) as given. */
export function dialViaRelaySplice(
  splice: SpliceDial,
  options: Omit<ConnectOptions, 'address' | 'carrier'>,
): Promise<ConnectedHost> {
  return connectToHost({
    ...options,
    address: splicePathName(splice.relayUrl),
    carrier: async (timeoutMs) => openSplice(splice, await splice.accessToken(), timeoutMs),
  });
}

/**
 * The relayed path as HostReach's last fallback, after WebRTC: a signed-in device reaches the
 * account's host through a splice at its relay. Its path is `relayed`; no round trip is measured.
 */
export function relaySpliceFallback(deps: {
  account: RelayAccount;
  deviceKey: KeyObject;
  deviceName: string;
}): ReachFallback {
  return {
    name: 'relayed',
    async dial({ name, host, how }) {
      const signedIn = deps.account.stored();
      if (signedIn === undefined) {
        throw new HangarError('E_HOST_UNREACHABLE', `"${name}" can be reached through the relay only when signed in`);
      }
      const session = deps.account.requireSession();
      const connected = await dialViaRelaySplice(
        { relayUrl: signedIn.relay_url, accessToken: () => session.accessToken(), hostId: host.host_id },
        { deviceKey: deps.deviceKey, deviceName: deps.deviceName, hostName: name, ...how },
      );
      return { ...connected, path: () => ({ kind: 'relayed', rtt_ms: null }) };
    },
  };
}

/** The device's half: an upgrade to the splice protocol; resolves once the host's agent joined. */
export function openSplice(splice: SpliceDial, accessToken: string, timeoutMs: number): Promise<Socket> {
  const url = new URL(SPLICE_DEVICE_PATH, splice.relayUrl);
  const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
    method: 'GET',
    headers: {
      connection: 'Upgrade',
      upgrade: SPLICE_PROTOCOL,
      authorization: `Bearer ${accessToken}`,
      'hangar-host': splice.hostId,
    },
  });
  const where = relayOrigin(splice.relayUrl);
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      request.destroy();
      reject(new HangarError('E_TIMEOUT', `the relay at ${where} did not open a relayed link within ${timeoutMs} ms`));
    }, timeoutMs);
    request.once('upgrade', (_response, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body = (body + chunk).slice(0, 16_384)));
      response.once('end', () => {
        clearTimeout(timer);
        reject(refusal(where, response.statusCode ?? 0, body));
      });
    });
    request.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new HangarError(
          'E_UNAVAILABLE',
          `relay unreachable: could not reach ${where} for a relayed link (${error.code ?? error.message})`,
        ),
      );
    });
    request.end();
  });
}

function refusal(where: string, status: number, body: string): HangarError {
  let shape: ErrorShape | undefined;
  try {
    shape = (JSON.parse(body) as { error?: ErrorShape }).error;
  } catch (error) {
    return new HangarError(
      'E_UNAVAILABLE',
      `the relay at ${where} answered HTTP ${status} (${toHangarError(error).message})`,
    );
  }
  if (shape?.code === undefined)
    return new HangarError('E_UNAVAILABLE', `the relay at ${where} answered HTTP ${status}`);
  return new HangarError(shape.code, `relayed link refused by ${where}: ${shape.message}`, shape.details);
}
