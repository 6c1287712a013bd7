import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { HangarError, SPLICE_AGENT_PATH, SPLICE_PROTOCOL, awaitSpliceUpgrade, relayOrigin } from '@hangar/shared';

/** The relay must switch protocols within this (it is holding the device's connection meanwhile). */
const DIAL_TIMEOUT_MS = 10_000;

/**
 * The agent's half of a splice (PROTOCOL.md "Relayed links"): an outbound connection to the relay
 * it is enrolled on, upgraded to the splice protocol for one splice id. Resolves with the raw
 * socket, whose bytes from then on are the device's end of the link: the caller serves the link
 * in it exactly as on an accepted connection (TLS with this host's certificate first), so the
 * relay carries only ciphertext. The relay's own certificate is checked as for the relay socket;
 * the link's security does not depend on it.
 */
export function dialSplice(relayUrl: string, spliceId: string, timeoutMs = DIAL_TIMEOUT_MS): Promise<Socket> {
  const url = new URL(SPLICE_AGENT_PATH, relayUrl);
  const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
    method: 'GET',
    headers: { connection: 'Upgrade', upgrade: SPLICE_PROTOCOL, 'hangar-splice': spliceId },
  });
  return awaitSpliceUpgrade<Socket>(request, { where: relayOrigin(relayUrl), what: 'the splice' }, timeoutMs);
}

/**
 * Relayed links being dialed at once, at most. Each is a socket to the relay until it switches
 * protocols (DIAL_TIMEOUT_MS at most), asked for by whichever device of the account the relay
 * let ask: the relay's per-account limit is the relay's, and an agent does not count on it for its
 * own file descriptors. Once dialed, a link counts among the connections that have not
 * authenticated (link/pending-connections.ts).
 */
export const MAX_SPLICE_DIALS = 8;

/** dialSplice, at most `max` at once; past that a request is refused (E_RATE_LIMITED) at once. */
export class SpliceDialer {
  private dialing = 0;

  constructor(
    private readonly max = MAX_SPLICE_DIALS,
    private readonly timeoutMs = DIAL_TIMEOUT_MS,
  ) {}

  dial(relayUrl: string, spliceId: string): Promise<Socket> {
    if (this.dialing >= this.max) {
      return Promise.reject(
        new HangarError(
          'E_RATE_LIMITED',
          `${this.max} relayed links are being opened already; this one was not (the device may ask again)`,
        ),
      );
    }
    this.dialing++;
    return dialSplice(relayUrl, spliceId, this.timeoutMs).finally(() => this.dialing--);
  }
}
