import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { HangarError, SPLICE_DEVICE_PATH, SPLICE_PROTOCOL, awaitSpliceUpgrade, relayOrigin } from '@hangar/shared';
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
  return awaitSpliceUpgrade<Socket>(
    request,
    { where: relayOrigin(splice.relayUrl), what: 'a relayed link' },
    timeoutMs,
  );
}
