import { generateKeyPairSync, sign } from 'node:crypto';
import {
  HangarError,
  makeHostStatement,
  signPresence,
  toHex,
  type HostPresence,
  type HostRecord,
} from '@hangar/shared';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { HostEntry } from '../../src/hosts/directory.js';
import type { HostRegistry } from '../../src/hosts/registry.js';
import { HostReach, type ReachFallback } from '../../src/relay/reach.js';
import type { RelayAccount } from '../../src/relay/relay-account.js';
import { loadOrCreateAgentKey } from '../../../../host-agent/src/identity/keys.js';
import { loadOrCreateTlsCert } from '../../../../host-agent/src/identity/tls.js';
import { connectToHost } from '../../src/link/connect.js';
import { Cleanup, newDeviceKey, pairDevice, startTestAgent } from '../link/fixture.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/**
 * A paired host whose address another machine's agent now answers (another key there), in an
 * account, with one fallback that fails as `fallback` says: the dial's answer.
 */
async function dialWithAnotherKeyAtTheAddress(options: {
  entries: (record: HostRecord) => Promise<HostEntry[]>;
  fallback: () => Promise<never>;
}): Promise<HangarError> {
  const host = await startTestAgent(cleanup);
  const decoy = await startTestAgent(cleanup);
  const deviceKey = newDeviceKey();
  const { pinned } = await pairDevice(host, 'laptop', deviceKey);
  const record: HostRecord = { name: 'mini', address: decoy.address, ...pinned, embedded: false, added_at: 0 };
  const registry = {
    find: (name: string) => (name === 'mini' ? record : undefined),
    list: () => [record],
    updateAddress: () => undefined,
  } as unknown as HostRegistry;
  const fallback: ReachFallback = { name: 'relayed', dial: options.fallback };
  const reach = new HostReach({
    registry,
    account: {} as RelayAccount,
    entries: () => options.entries(record),
    deviceKey,
    deviceName: 'laptop',
    saved: () => undefined,
    fallbacks: [fallback],
    logger: pino({ level: 'silent' }),
  });
  return reach.dial('mini').then(
    () => {
      throw new Error('linked to the decoy');
    },
    (error: HangarError) => error,
  );
}

function presence(record: HostRecord): HostPresence {
  return {
    host_id: 'host_1',
    name: 'mini',
    public_key: record.agent_key,
    cert_fingerprint: record.cert_fingerprint.replace(/:/g, '').toLowerCase(),
    enrolled_at: 0,
    online: true,
    last_seen: null,
    record: null,
    signature: null,
  } as HostPresence;
}

describe('HostReach: another key at a paired host’s address', () => {
  it('is the answer when the account’s word on the host cannot be had (not the account’s error)', async () => {
    const failure = await dialWithAnotherKeyAtTheAddress({
      entries: () => Promise.reject(new HangarError('E_AUTH_REQUIRED', 'signed out: sign in again')),
      fallback: () => Promise.reject(new HangarError('E_HOST_UNREACHABLE', 'no fallback')),
    });
    expect(failure.code, failure.message).toBe('E_AUTH_HOST_KEY_CHANGED');
  });

  it('is the answer when the fallbacks then fail with a refusal of their own (the relay’s word)', async () => {
    const failure = await dialWithAnotherKeyAtTheAddress({
      entries: async (record) => [
        {
          name: 'mini',
          record: { ...record, last_seen: null },
          account: { host: presence(record), presence: 'online' },
        },
      ],
      fallback: () =>
        Promise.reject(new HangarError('E_RATE_LIMITED', 'a relayed link refused by the relay: slow down')),
    });
    expect(failure.code, failure.message).toBe('E_AUTH_HOST_KEY_CHANGED');
  });
});

describe('HostReach: an account host this computer has no secret for (the keys the relay lists)', () => {
  it('passes over another machine at the address it published (sent nothing) and links through a fallback', async () => {
    const host = await startTestAgent(cleanup);
    const decoy = await startTestAgent(cleanup);
    const deviceKey = newDeviceKey();
    await pairDevice(host, 'laptop', deviceKey); // let in, as an approved device would be
    const key = await loadOrCreateAgentKey(host.dataDir);
    const cert = await loadOrCreateTlsCert(host.dataDir);
    const record = { addresses: [decoy.address], tailnet: [], version: '1', issued_at: Date.now() };
    const presence: HostPresence = {
      host_id: 'host_1',
      name: 'mini',
      public_key: key.publicKeyHex,
      cert_fingerprint: cert.fingerprint.replace(/:/g, '').toLowerCase(),
      enrolled_at: 0,
      online: true,
      last_seen: null,
      record,
      signature: signPresence(key.signer, record),
    };
    // This computer vouched for the host's key (the account's first computer takes no other).
    const own = generateKeyPairSync('ed25519');
    const ownKey = new Uint8Array(own.publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
    const signer = { publicKey: ownKey, sign: (m: Uint8Array) => new Uint8Array(sign(null, m, own.privateKey)) };
    presence.vouches = [
      makeHostStatement(signer, {
        kind: 'host',
        account_id: 'acct_1',
        host_key: presence.public_key,
        cert_fingerprint: presence.cert_fingerprint,
        name: 'mini',
        issued_at: 0,
      }),
    ];
    const saved: HostRecord[] = [];
    const registry = {
      find: () => undefined,
      list: () => saved,
      save: (r: HostRecord) => saved.push(r),
    } as unknown as HostRegistry;
    const fallback: ReachFallback = {
      name: 'relayed',
      dial: async ({ how }) => ({
        ...(await connectToHost({ address: host.address, deviceKey, deviceName: 'laptop', hostName: 'mini', ...how })),
        path: () => ({ kind: 'relayed', rtt_ms: null }),
      }),
    };
    const reach = new HostReach({
      registry,
      account: {
        stored: () => ({ account_id: 'acct_1', device_name: 'laptop' }),
        store: { secretsFor: () => [], trust: () => undefined },
        trustedDeviceKeys: () => [toHex(ownKey)],
        call: async () => ({ statements: [] }),
      } as unknown as RelayAccount,
      entries: async () => [{ name: 'mini', record: undefined, account: { host: presence, presence: 'online' } }],
      deviceKey,
      deviceName: 'laptop',
      saved: () => undefined,
      fallbacks: [fallback],
      logger: pino({ level: 'silent' }),
    });
    const dialed = await reach.dial('mini');
    dialed.transport.close();
    expect(dialed.agent_key).toBe(key.publicKeyHex);
    expect(saved.map((r) => r.agent_key)).toEqual([key.publicKeyHex]);
    expect(decoy.links).toHaveLength(0);
  });
});
