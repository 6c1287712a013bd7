import { z } from 'zod';
import { HangarError } from '../errors.js';
import { ErrorShapeSchema } from '../protocol/control.js';
import { jsonOrUndefined } from '../validate.js';

/**
 * Both halves of a splice (PROTOCOL.md "Relayed links") are an HTTP/1.1 upgrade to the relay:
 * the device's (electron/core) and the agent's (host-agent) differ only in path and headers. The
 * request is made by the caller with node:http (shared/ has no Node); this waits for its answer.
 * These are the few parts of node:http's ClientRequest and IncomingMessage it uses.
 */
export interface UpgradedSocket {
  unshift(chunk: Uint8Array): void;
}
interface UpgradeRefusal {
  statusCode?: number | undefined;
  setEncoding(encoding: 'utf8'): unknown;
  on(event: 'data', listener: (chunk: string) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
}
export interface UpgradeRequest<S extends UpgradedSocket> {
  once(event: 'upgrade', listener: (response: unknown, socket: S, head: Uint8Array) => void): unknown;
  once(event: 'response', listener: (response: UpgradeRefusal) => void): unknown;
  once(event: 'error', listener: (error: Error & { code?: string }) => void): unknown;
  destroy(): unknown;
  end(): unknown;
}

/** The most of a refusal's body that is read: an error shape is far smaller. */
const REFUSAL_BODY_LIMIT = 16_384;

/**
 * Sends `request` and resolves with its socket once the relay switched protocols; rejects with
 * the relay's refusal (its error code), E_TIMEOUT, or E_UNAVAILABLE when it cannot be reached.
 * `where` is the relay's origin and `what` the link asked for, both for messages.
 */
export function awaitSpliceUpgrade<S extends UpgradedSocket>(
  request: UpgradeRequest<S>,
  words: { where: string; what: string },
  timeoutMs: number,
): Promise<S> {
  const { where, what } = words;
  return new Promise<S>((resolve, reject) => {
    const timer = setTimeout(() => {
      request.destroy();
      reject(new HangarError('E_TIMEOUT', `the relay at ${where} did not open ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    request.once('upgrade', (_response, socket, head) => {
      clearTimeout(timer);
      // Bytes the other end sent right after the switch came with the 101: they are the link's.
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body = (body + chunk).slice(0, REFUSAL_BODY_LIMIT)));
      response.once('end', () => {
        clearTimeout(timer);
        reject(spliceRefusal(where, what, response.statusCode ?? 0, body));
      });
    });
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new HangarError(
          'E_UNAVAILABLE',
          `relay unreachable: could not reach ${where} for ${what} (${error.code ?? error.message})`,
        ),
      );
    });
    request.end();
  });
}

const RelayRefusalBody = z.object({ error: ErrorShapeSchema });

/** The relay's error answer (`{error: {code, message}}`) as a HangarError, or its status in words. */
function spliceRefusal(where: string, what: string, status: number, body: string): HangarError {
  const parsed = RelayRefusalBody.safeParse(jsonOrUndefined(body));
  if (!parsed.success) return new HangarError('E_UNAVAILABLE', `the relay at ${where} answered HTTP ${status}`);
  const shape = parsed.data.error;
  return new HangarError(shape.code, `${what} refused by ${where}: ${shape.message}`, shape.details);
}
