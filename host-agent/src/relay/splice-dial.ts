import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { HangarError, SPLICE_AGENT_PATH, SPLICE_PROTOCOL, toHangarError, type ErrorShape } from '@hangar/shared';

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
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      request.destroy();
      reject(new HangarError('E_TIMEOUT', `the relay did not open the splice within ${timeoutMs} ms`));
    }, timeoutMs);
    request.once('upgrade', (_response, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      // Bytes the device sent right after the switch came with the 101: they are the link's.
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body = (body + chunk).slice(0, 16_384)));
      response.once('end', () => {
        clearTimeout(timer);
        reject(relayRefusal(response.statusCode ?? 0, body));
      });
    });
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(new HangarError('E_UNAVAILABLE', `could not reach the relay for a splice: ${error.message}`));
    });
    request.end();
  });
}

/** The relay's error answer (`{error: {code, message}}`) as a HangarError, or the status in words. */
export function relayRefusal(status: number, body: string): HangarError {
  try {
    const parsed = JSON.parse(body) as { error?: ErrorShape };
    if (parsed.error?.code !== undefined) return HangarError.from(parsed.error);
  } catch (error) {
    return new HangarError('E_UNAVAILABLE', `the relay answered HTTP ${status} (${toHangarError(error).message})`);
  }
  return new HangarError('E_UNAVAILABLE', `the relay answered HTTP ${status}`);
}
