import { describe, expect, it } from 'vitest';
import { HangarError, RelayClient, type FetchLike } from '../src/index.js';

/** A relay stand-in answering every call with this status and error, as hangar-relay shapes them. */
function answering(status: number, code: string, message: string): FetchLike {
  return () =>
    Promise.resolve({
      status,
      headers: { get: () => null },
      text: () => Promise.resolve(JSON.stringify({ error: { code, message } })),
    });
}

async function failure(client: RelayClient): Promise<HangarError> {
  const error = await client.call('devices.offer_tag', { tag: 'a'.repeat(64) }, { accessToken: 'x'.repeat(43) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HangarError);
  return error as HangarError;
}

describe('a relay older than this client', () => {
  it('is recognised by how a relay answers a procedure it does not have, and said so plainly', async () => {
    const old = new RelayClient({
      url: 'https://relay.example/',
      fetch: answering(404, 'E_NOT_FOUND', 'no procedure "devices.offer_tag" on this relay'),
    });
    const error = await failure(old);
    expect(error.code).toBe('E_PROTOCOL');
    expect(error.message).toMatch(
      /^the relay at https:\/\/relay\.example is older than this Hangar: it has no devices\.offer_tag\. Its operator should upgrade hangar-relay/,
    );
    expect(error.details?.['relay_lacks']).toBe('devices.offer_tag');
  });

  it('an E_NOT_FOUND about something else stays what the relay said', async () => {
    const client = new RelayClient({
      url: 'https://relay.example',
      fetch: answering(404, 'E_NOT_FOUND', 'no device dev_x in this account (devices.list shows them)'),
    });
    const error = await failure(client);
    expect(error.code).toBe('E_NOT_FOUND');
    expect(error.details?.['relay_lacks']).toBeUndefined();
  });
});
