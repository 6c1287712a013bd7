import { rmSync } from 'node:fs';
import { get, request } from 'node:https';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { RelayAgentSocket, RelayClient, type FetchLike, type TextSocketLike } from '@hangar/shared';
import { selfSignedCertificate } from '../../test/support/self-signed.mjs';
import { enroll, presenceRecord, signup, startTestRelay, tempDir, waitFor } from './support/relay-fixture.js';

describe('a relay serving TLS itself (--tls-cert/--tls-key)', () => {
  it('answers over HTTPS and WSS, and agents sign the https origin', async () => {
    const dir = tempDir('tls');
    try {
      const tls = selfSignedCertificate(dir, { name: 'relay', commonName: '127.0.0.1', ip: '127.0.0.1' });
      const ca = tls.cert;
      await using relay = await startTestRelay({ tls });
      expect(relay.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const health = await new Promise<number>((resolve, reject) =>
        get(`${relay.url}/healthz`, { ca }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        }).on('error', reject),
      );
      expect(health).toBe(200);

      // The API over HTTPS through the shared client, with a fetch that trusts this test CA.
      const client = new RelayClient({ url: relay.url, fetch: httpsFetch(ca) });
      const owner = await signup(client);
      const { host, hostId } = await enroll(client, owner);
      const agent = new RelayAgentSocket({
        relayUrl: relay.url,
        hostId,
        signer: host.signer,
        socketFactory: (url) => new WebSocket(url, { ca }) as unknown as TextSocketLike,
        presence: () => presenceRecord(),
        statementsSeq: () => 0,
      });
      agent.start();
      try {
        await waitFor('agent welcomed over wss', () => agent.isWelcomed);
      } finally {
        agent.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The slice of fetch RelayClient uses, over node:https with a CA of our own (the relay's self-signed cert). */
function httpsFetch(ca: Buffer): FetchLike {
  return (url, init) =>
    new Promise((resolve, reject) => {
      const call = request(url, { method: init.method, headers: init.headers, ca }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: { get: (name: string) => (response.headers[name.toLowerCase()] as string | undefined) ?? null },
            text: async () => Buffer.concat(chunks).toString(),
          }),
        );
      });
      call.on('error', reject);
      call.end(init.body);
    });
}
