import { request } from 'node:http';
import type { Socket } from 'node:net';

export type SpliceUpgraded = { status: 101; socket: Socket } | { status: number; body: string };

/** An upgrade to `hangar-splice/1` at `path`, made by hand: the spliced socket, or the refusal's status and body. */
export function spliceUpgrade(url: string, path: string, headers: Record<string, string>): Promise<SpliceUpgraded> {
  return new Promise((resolve, reject) => {
    const asked = request(new URL(path, url), {
      headers: { connection: 'Upgrade', upgrade: 'hangar-splice/1', ...headers },
    });
    asked.once('upgrade', (_response, socket: Socket, head: Buffer) => {
      if (head.length > 0) socket.unshift(head);
      resolve({ status: 101, socket });
    });
    asked.once('response', (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    asked.once('error', reject);
    asked.end();
  });
}
