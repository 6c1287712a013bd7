import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_CLOSE, RelayClient, type StoredStatement } from '@hangar/shared';
import {
  agentSocket,
  deviceSocket,
  enroll,
  login,
  msUntilOffline,
  signup,
  startTestRelay,
  waitFor,
  endorse,
  type TestRelay,
  askHost,
  rawDeviceSocket,
} from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';
import { startPostgres, type TestPostgres } from './support/postgres.js';
import { startRelayProcess } from './support/relay-process.js';

/**
 * Two relay replicas on one PostgreSQL database, as behind a load balancer: the agent on one,
 * the device on the other. Presence, statements and signals cross through LISTEN/NOTIFY.
 */
describe('two relay replicas on one PostgreSQL', () => {
  let postgres: TestPostgres;
  let url: string;
  let a: TestRelay;
  let b: TestRelay;
  beforeAll(async () => {
    postgres = await startPostgres();
    url = await postgres.createDatabase('replicas');
    a = await startTestRelay({ storage: { kind: 'postgres', url } });
    b = await startTestRelay({ storage: { kind: 'postgres', url } });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await postgres?.stop();
  });

  it('an agent on replica A is seen online and offline by a device on replica B, and signals cross both ways', async () => {
    const owner = await signup(a.client);
    const { host, hostId } = await enroll(b.client, owner);
    const device = deviceSocket(b.url, owner);
    const agent = agentSocket(a.url, hostId, host);
    agent.onSignal((signal) =>
      agent.sendSignal({
        toDevice: signal.from_device.device_id,
        recipientKey: signal.from_device.public_key,
        requestId: signal.request_id,
        payload: `answer to ${signal.payload}`,
      }),
    );
    try {
      const connectedAt = performance.now();
      const online = await waitFor('online on B', () =>
        device.seen.find((s) => s.host.host_id === hostId && s.host.online && s.at >= connectedAt),
      );
      expect(online.at - connectedAt).toBeLessThan(2_000);
      await waitFor('its record on B', () => device.hosts.get(hostId)?.record !== null);

      const answer = await askHost(device, { hostId, host }, 'req-cross-1', 'offer');
      expect(answer.payload).toBe('answer to offer');
      // A payload larger than a NOTIFY can carry (8000 bytes) goes through the bus table.
      const big = 'x'.repeat(60_000);
      const bigAnswer = await askHost(device, { hostId, host }, 'req-cross-2', big);
      expect(bigAnswer.payload).toBe(`answer to ${big}`);

      const goneAt = performance.now();
      agent.dispose();
      expect(await msUntilOffline(device, hostId, goneAt)).toBeLessThan(10_000);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });

  it('an approval made through replica B reaches the agent on replica A', async () => {
    const owner = await signup(b.client);
    const phone = await login(b.client, owner.email);
    const { host, hostId } = await enroll(a.client, owner);
    const agent = agentSocket(a.url, hostId, host);
    const received: StoredStatement[] = [];
    agent.onStatements((statements) => received.push(...statements));
    try {
      await waitFor('agent online', () => agent.isWelcomed);
      await endorse(b.client, owner, phone, 'phone');
      await waitFor('the statement on A', () => received.length === 1);
      expect(received[0]!.subject_device_key).toBe(phone.key.publicKey);
    } finally {
      agent.dispose();
    }
  });

  it("a logout through replica A closes the login's device socket on replica B and B refuses its token", async () => {
    const owner = await signup(a.client);
    const socket = rawDeviceSocket(b.url, owner.session.access_token);
    try {
      await waitFor('ready on B', () => socket.messages.find((m) => m.type === 'ready'));
      await a.client.call('auth.logout', { refresh_token: owner.session.refresh_token });
      const closed = await waitFor('closed on B', () => socket.closed());
      expect(closed.code).toBe(RELAY_CLOSE.authFailed);
      const refused = await refusal(b.client.call('hosts.list', {}, { accessToken: owner.session.access_token }));
      expect(refused.code).toBe('E_AUTH_REQUIRED');
    } finally {
      socket.socket.terminate();
    }
  });

  it('background work runs on exactly one replica', () => {
    const sweepers = [a, b].filter((r) => r.logs.some((line) => line.includes('runs the background sweeper')));
    expect(sweepers).toHaveLength(1);
  });
});

describe('a replica killed with kill -9', () => {
  it('its hosts go offline for devices on the other replica, which takes over the background work', async () => {
    await using postgres = await startPostgres();
    const url = await postgres.createDatabase('failover');
    // The doomed replica starts first, so it holds the sweeper lock when it dies.
    await using doomed = await startRelayProcess(
      ['--listen', '127.0.0.1:0', '--database', url, '--password-hash-cost', '10'],
      {
        HANGAR_LOG_LEVEL: 'info',
      },
    );
    await waitFor('the first replica to take the sweeper lock', () => doomed.stderr().includes('background sweeper'));
    await using survivor = await startTestRelay({ storage: { kind: 'postgres', url } });
    const owner = await signup(survivor.client);
    const { host, hostId } = await enroll(new RelayClient({ url: doomed.url }), owner);
    const agent = agentSocket(doomed.url, hostId, host);
    const device = deviceSocket(survivor.url, owner);
    try {
      await waitFor('online on the survivor', () => device.hosts.get(hostId)?.online === true);
      const killedAt = performance.now();
      await doomed.crash();
      // Nobody closes the host's row for a dead replica: the survivor's sweeper does, once the
      // dead replica's heartbeat is 15 s old (plus a sweep interval of 5 s).
      expect(await msUntilOffline(device, hostId, killedAt, 30_000)).toBeLessThan(25_000);
      expect(survivor.logs.some((line) => line.includes('runs the background sweeper'))).toBe(true);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });
});
