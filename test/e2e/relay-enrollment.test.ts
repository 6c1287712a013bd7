import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  Mux,
  RelayClient,
  encodeEnrollToken,
  makeStatement,
  verifyPresence,
  type CloseReason,
  type HangarError,
  type HostPresence,
} from '@hangar/shared';
import { connectToHost, type ConnectedHost } from '../../electron/core/src/link/connect.js';
import {
  enrollLine,
  login,
  newKey,
  signup,
  waitFor,
  endorse,
  revoke,
  type SignedIn,
  type TestKey,
} from '../../relay/test/support/relay-fixture.js';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { startTestRelayProcess } from '../support/relay-stack.js';
import { relayStatus } from '../../host-agent/src/relay/index.js';
import { useCleanups } from '../support/cleanups.js';
import { ROOT, hangarAgent, removeDir, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';

/**
 * Enrolling a host, end to end, with a real relay process (SQLite) and a real agent process:
 * `hangar-agent enroll` with the line a device made, the host online in the relay's list with the
 * addresses it signed, the first link keyed by the token's end-to-end secret, a second device let
 * in by an endorsement and shut out by a revocation, and what a lying relay can no longer do.
 * The device side is the core's link (connectToHost) and the shared RelayClient; the `hangar`
 * commands for accounts come with the core's relay work. Tailscale is the stand-in in
 * test/fixtures/tailscale (no tailnet here), printing `tailscale status --json` as documented.
 */

const cleanups = useCleanups();

const TAILSCALE = join(ROOT, 'test', 'fixtures', 'tailscale');

async function relayAt(dataDir: string, port = 0): Promise<RelayProcess> {
  const relay = await startTestRelayProcess(dataDir, port);
  cleanups.push(() => relay.stop());
  return relay;
}

async function agentWith(options: { tailnet?: object; listen?: string } = {}): Promise<AgentProcess> {
  const dataDir = tempDir('enrolled');
  cleanups.push(() => removeDir(dataDir));
  const env: Record<string, string> = { PATH: `${TAILSCALE}:${process.env['PATH']}` };
  if (options.tailnet) {
    const state = join(dataDir, '..', `${dataDir.split('/').pop()}-tailscale.json`);
    writeFileSync(state, JSON.stringify(options.tailnet));
    cleanups.push(() => removeDir(state));
    env['TAILSCALE_STANDIN_STATE'] = state;
  }
  const agent = await startAgentProcess(dataDir, {
    env,
    logLevel: 'info',
    ...(options.listen ? { extraArgs: ['--listen', options.listen] } : {}),
  });
  cleanups.push(() => agent.stop());
  return agent;
}

/** What `hangar hosts enroll-token` will do: a token from the relay, `e` made here, one line. */
async function makeToken(client: RelayClient, owner: SignedIn, name = 'mini') {
  const { line, token, secret } = await enrollLine(client, owner, name);
  return { line, enrollment: { token_id: token.token_id, secret } };
}

async function enrollAgent(agent: AgentProcess, line: string): Promise<string> {
  const enrolled = await hangarAgent(['enroll', '--data', agent.dataDir, '--token', line, '--name', 'mini', '--json']);
  expect(enrolled.stderr).toBe('');
  expect(enrolled.code).toBe(0);
  return (JSON.parse(enrolled.stdout) as { host_id: string }).host_id;
}

async function onlineHost(client: RelayClient, owner: SignedIn, hostId: string): Promise<HostPresence> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const listed = await client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    const seen = listed.hosts.find((host) => host.host_id === hostId && host.online && host.record !== null);
    if (seen !== undefined) return seen;
    if (Date.now() > deadline) throw new Error('the host did not show online with a record within 15 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** An agent enrolled with a fresh token of `owner`'s, online on the relay. */
async function enrolledAgent(client: RelayClient, owner: SignedIn) {
  const agent = await agentWith();
  const { line, enrollment } = await makeToken(client, owner);
  const host = await onlineHost(client, owner, await enrollAgent(agent, line));
  return { agent, enrollment, host };
}

function link(agent: AgentProcess, key: TestKey, name: string, how: Record<string, unknown>): Promise<ConnectedHost> {
  return connectToHost({
    address: `127.0.0.1:${agent.port}`,
    deviceKey: key.privateKey,
    deviceName: name,
    hostName: 'mini',
    ...how,
  });
}

async function refused(promise: Promise<ConnectedHost>): Promise<HangarError> {
  const outcome = await promise.then(
    (connected) => {
      connected.transport.close();
      return undefined;
    },
    (error: unknown) => error as HangarError,
  );
  if (outcome === undefined) throw new Error('expected the host to refuse the link');
  return outcome;
}

/** Links in auth mode until the host lets the device in (a statement takes a moment to arrive). */
async function linkWhenAccepted(agent: AgentProcess, key: TestKey, pins: object): Promise<ConnectedHost> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await link(agent, key, 'phone', { pinned: pins });
    } catch (error) {
      if ((error as HangarError).code !== 'E_AUTH_UNKNOWN_DEVICE' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const pinsOf = (host: HostPresence) => ({
  agent_key: host.public_key,
  cert_fingerprint: host.cert_fingerprint.match(/../g)!.join(':').toUpperCase(),
});

describe('enrolling a host through a relay', () => {
  it('hangar-agent enroll puts the host online with the addresses it signed, and the first link pairs with the secret in the line', async () => {
    const relay = await relayAt(tempDir('relay'));
    const client = new RelayClient({ url: relay.url });
    const owner = await signup(client);
    const agent = await agentWith({
      listen: '0.0.0.0:0',
      tailnet: { backend: 'Running', ips: ['100.101.102.103', 'fd7a:115c:a1e0::1'], dnsName: 'mini.tail1234.ts.net' },
    });
    const { line, enrollment } = await makeToken(client, owner);
    const hostId = await enrollAgent(agent, line);

    // The running agent notices the enrollment by itself and publishes what a device can dial.
    const host = await onlineHost(client, owner, hostId);
    expect(verifyPresence(host.public_key, host.record!, host.signature!)).toBe(true);
    expect(host.record!.addresses).toContain(`127.0.0.1:${agent.port}`);
    expect(host.record!.tailnet).toEqual([`100.101.102.103:${agent.port}`, `mini.tail1234.ts.net:${agent.port}`]);
    expect(host.record!.addresses).not.toContain(`100.101.102.103:${agent.port}`);

    // A wrong secret gets the one generic refusal and spends nothing.
    const wrong = await refused(
      link(agent, owner.key, 'laptop', { enrollment: { ...enrollment, secret: randomBytes(32).toString('hex') } }),
    );
    expect(wrong.code).toBe('E_AUTH_BAD_CODE');

    // The device that made the token: its first link pairs, and it pins the keys the relay listed.
    const first = await link(agent, owner.key, 'laptop', { enrollment });
    first.transport.close();
    expect(first.agent_key).toBe(host.public_key);
    expect(first.cert_fingerprint).toBe(pinsOf(host).cert_fingerprint);
    expect(first.host.relay).toMatchObject({ host_id: hostId, connected: true });
    (await link(agent, owner.key, 'laptop', { pinned: pinsOf(host) })).transport.close();

    // The token worked once: at the host, and at the relay (from another host too).
    expect((await refused(link(agent, owner.key, 'laptop', { enrollment }))).code).toBe('E_AUTH_BAD_CODE');
    const again = await hangarAgent(['enroll', '--data', agent.dataDir, '--token', line]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already used on this host.*hangar hosts enroll-token/);
    const elsewhere = tempDir('other-host');
    cleanups.push(() => removeDir(elsewhere));
    const replayed = await hangarAgent(['enroll', '--data', elsewhere, '--token', line]);
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toMatch(/already used.*hangar hosts enroll-token/);
  });

  it('a second device gets in once the first endorses it, and a revocation closes its open link and refuses the next', async () => {
    const relay = await relayAt(tempDir('relay'));
    const client = new RelayClient({ url: relay.url });
    const owner = await signup(client);
    const { agent, enrollment, host } = await enrolledAgent(client, owner);
    expect(host.record!.tailnet).toEqual([]); // no Tailscale here (the stand-in finds no tailscaled)
    (await link(agent, owner.key, 'laptop', { enrollment })).transport.close();

    const phone = await login(client, owner.email, newKey(), 'phone');
    expect((await refused(link(agent, phone.key, 'phone', { pinned: pinsOf(host) }))).code).toBe(
      'E_AUTH_UNKNOWN_DEVICE',
    );
    await endorse(client, owner, phone, 'phone');
    const linked = await linkWhenAccepted(agent, phone.key, pinsOf(host));
    const mux = new Mux(linked.transport, { role: 'client' });
    cleanups.push(() => mux.dispose());
    const closed = new Promise<CloseReason>((resolve) => mux.onClose(resolve));

    await revoke(client, owner, phone, 'phone');
    const reason = await Promise.race([
      closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the link stayed open')), 15_000)),
    ]);
    expect(reason.code).toBe('E_AUTH_DEVICE_REVOKED');
    expect((await refused(link(agent, phone.key, 'phone', { pinned: pinsOf(host) }))).code).toBe(
      'E_AUTH_UNKNOWN_DEVICE',
    );
  });

  it('the agent comes back to a relay killed with kill -9, and an endorsement the relay made up meanwhile changes nothing', async () => {
    const relayData = tempDir('relay');
    let relay = await relayAt(relayData);
    const client = new RelayClient({ url: relay.url });
    const owner = await signup(client);
    const { agent, enrollment, host } = await enrolledAgent(client, owner);
    (await link(agent, owner.key, 'laptop', { enrollment })).transport.close();

    await relay.crash();
    // The relay's database, changed as a compromised relay would: an endorsement of an intruder,
    // signed by the relay's own key, in the account's next seq.
    const intruder = newKey();
    const relayKey = newKey();
    const forged = makeStatement(relayKey.signer, {
      kind: 'endorse',
      account_id: owner.session.account.account_id,
      subject_device_key: intruder.publicKey,
      subject_name: 'intruder',
      issued_at: Date.now(),
    });
    const db = new Database(join(relayData, 'relay.db'));
    const seq = db.transaction(() => {
      const account = owner.session.account.account_id;
      db.prepare('UPDATE accounts SET statement_seq = statement_seq + 1 WHERE id = ?').run(account);
      const { statement_seq } = db.prepare('SELECT statement_seq FROM accounts WHERE id = ?').get(account) as {
        statement_seq: number;
      };
      db.prepare(
        `INSERT INTO statements (account_id, seq, kind, subject_device_id, subject_device_key, subject_name,
           issued_at, signer_device_key, signature, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        account,
        statement_seq,
        forged.kind,
        `dev_${'0'.repeat(32)}`,
        forged.subject_device_key,
        forged.subject_name,
        forged.issued_at,
        forged.signer_device_key,
        forged.signature,
        Date.now(),
      );
      return statement_seq;
    })();
    db.close();

    relay = await relayAt(relayData, relay.port);
    // Back by itself (backoff from 0.5 s): online again, and the catch-up brought the forgery.
    await onlineHost(client, owner, host.host_id);
    // Kept without effect: no device the host trusts vouched for the relay's key.
    await waitFor('the agent to say the forged statement changed nothing', () =>
      agent
        .stderr()
        .split('\n')
        .some((entry) => entry.includes('kept a statement without effect') && entry.includes(`"seq":${seq}`)),
    );
    expect(agent.stderr()).toMatch(/signed by a device this host does not trust \(yet\)/);
    expect((await refused(link(agent, intruder, 'intruder', { pinned: pinsOf(host) }))).code).toBe(
      'E_AUTH_UNKNOWN_DEVICE',
    );
  });

  it('hangar-agent enroll says what to do with a damaged line or a relay it cannot reach, and stores nothing', async () => {
    const dataDir = tempDir('not-enrolled');
    cleanups.push(() => removeDir(dataDir));
    const damaged = await hangarAgent(['enroll', '--data', dataDir, '--token', 'hgr1_not*base64']);
    expect(damaged.code).toBe(2);
    expect(damaged.stderr).toMatch(/damaged.*copy the whole line/);

    const unreachable = encodeEnrollToken({
      v: 1,
      r: 'http://127.0.0.1:9',
      i: `tok_${randomBytes(16).toString('hex')}`,
      s: randomBytes(32).toString('hex'),
      e: randomBytes(32).toString('hex'),
      d: newKey().publicKey,
    });
    const down = await hangarAgent(['enroll', '--data', dataDir, '--token', unreachable]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/relay unreachable at http:\/\/127\.0\.0\.1:9.*That URL comes from the token line/);
    expect(relayStatus(dataDir)).toBeNull();
  });
});
