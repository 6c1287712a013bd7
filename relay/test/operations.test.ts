import Database from 'better-sqlite3';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeLoginProof } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import {
  agentSocket,
  enroll,
  signup,
  startTestRelay,
  waitFor,
  useTestRelay,
  hostAndDevice,
  ownerWithHost,
  tempDir,
} from './support/relay-fixture.js';
import { relayCli, startRelayProcess } from './support/relay-process.js';

describe('operating a relay', () => {
  const relay = useTestRelay();

  it('/healthz answers and /metrics counts logins, enrollments, connected agents and errors', async () => {
    const health = await fetch(`${relay.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true });
    const { host, hostId } = await ownerWithHost(relay.client);
    const agent = agentSocket(relay.url, hostId, host);
    try {
      await waitFor('agent online', () => agent.isWelcomed);
      await fetch(`${relay.url}/v1/hosts.list`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      expect(metrics).toMatch(/hangar_relay_logins_total\{method="signup",outcome="ok"\} [1-9]/);
      expect(metrics).toMatch(/hangar_relay_enrollments_total\{outcome="ok"\} 1/);
      expect(metrics).toMatch(/hangar_relay_connected_agents 1/);
      expect(metrics).toMatch(/hangar_relay_errors_total\{code="E_AUTH_REQUIRED"\} [1-9]/);
      expect(metrics).toMatch(/hangar_relay_process_resident_memory_bytes/);
    } finally {
      agent.dispose();
    }
  });

  it("/metrics answers on the relay's own host or to --metrics-token-file's token, never to the internet through a proxy", async () => {
    const dir = tempDir('metrics');
    const tokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, 'scrape-me-with-this-long-token\n', { mode: 0o600 });
    const missing = await relayCli([
      'serve',
      '--data',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--metrics-token-file',
      join(dir, 'none'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--metrics-token-file .*none: ENOENT/);
    await using served = await startRelayProcess([
      '--data',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--trust-proxy',
      '--metrics-token-file',
      tokenFile,
    ]);
    const scrape = (headers: Record<string, string> = {}) => fetch(`${served.url}/metrics`, { headers });
    // From this host, no proxy in between: the operator's scraper.
    expect((await scrape()).status).toBe(200);
    // Through the proxy (a client on the internet): refused, saying how to scrape instead.
    const forwarded = { 'x-forwarded-for': '203.0.113.7' };
    const refused = await scrape(forwarded);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/own host.*--metrics-token-file/);
    expect((await scrape({ ...forwarded, authorization: 'Bearer scrape-me-with-this-long-tokeX' })).status).toBe(403);
    const withToken = await scrape({ ...forwarded, authorization: 'Bearer scrape-me-with-this-long-token' });
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toMatch(/hangar_relay_connected_agents 0/);
  });

  it("hangar-relay audit prints an account's privileged actions; doctor and migrate check the database", async () => {
    const owner = await signup(relay.client);
    await enroll(relay.client, owner);
    const audit = await relayCli(['audit', '--data', relay.dataDir!, '--account', owner.email, '--json']);
    expect(audit.code).toBe(0);
    const actions = audit.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { action: string }).action);
    expect(actions).toEqual(['host.enrolled', 'enroll_token.created', 'account.signup']);
    const unknown = await relayCli(['audit', '--data', relay.dataDir!, '--account', 'nobody@example.com']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no account for nobody@example.com/);

    const migrate = await relayCli(['migrate', '--data', relay.dataDir!]);
    expect(migrate.stdout).toMatch(/up to date/);
    const doctor = await relayCli(['doctor', '--data', relay.dataDir!]);
    expect(doctor.code).toBe(0);
    expect(doctor.stdout).toMatch(/ok\s+schema: up to date/);
    expect(doctor.stdout).toMatch(/ok\s+access-token key/);
  });

  it('audit and doctor given a data directory with no relay in it say so and create nothing there', async () => {
    const parent = tempDir('no-relay');
    try {
      const typo = join(parent, 'relay-dat');
      const audit = await relayCli(['audit', '--data', typo]);
      expect(audit.code).toBe(1);
      expect(audit.stderr).toContain(`no relay database at ${join(typo, 'relay.db')}`);
      expect(audit.stderr).toMatch(/give --data the directory `hangar-relay serve` uses/);
      const doctor = await relayCli(['doctor', '--data', typo]);
      expect(doctor.code).toBe(1);
      expect(doctor.stdout).toMatch(/FAIL\s+database: no relay database at /);
      expect(existsSync(typo)).toBe(false);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('a relay stopping with agents and devices connected marks its hosts offline and logs no error', async () => {
    const stopping = await startTestRelay();
    const { host, hostId, agent, device } = await hostAndDevice(stopping);
    try {
      await waitFor('both up', () => agent.isWelcomed && device.socket.isReady);
      await stopping.relay.dispose();
      const file = new Database(join(stopping.dataDir!, 'relay.db'), { readonly: true });
      const row = file.prepare('SELECT online FROM hosts WHERE id = ?').get(hostId) as { online: number };
      file.close();
      expect(row.online).toBe(0);
      expect(stopping.logs.filter((line) => /"level":50/.test(line))).toEqual([]);
    } finally {
      agent.dispose();
      device.socket.dispose();
      await stopping.stop();
    }
  });

  it('a relay stops promptly while a keep-alive client is mid-request', async () => {
    // Sign-in at a real cost keeps the request in flight while the relay is told to stop.
    const busy = await startTestRelay({ passwordCost: 15 });
    const user = await signup(busy.client);
    const agent = new HttpAgent({ keepAlive: true });
    try {
      const inFlight = new Promise<number>((resolve) => {
        const call = httpRequest(
          `${busy.url}/v1/auth.login`,
          { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        call.on('error', () => resolve(-1));
        call.end(
          JSON.stringify({
            email: user.email,
            password: 'a wrong but valid password',
            device: { public_key: user.key.publicKey, name: 'x' },
            proof: makeLoginProof(user.key.signer, { relayOrigin: busy.client.origin, identity: user.email }),
          }),
        );
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const began = Date.now();
      await Promise.race([busy.stop(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
      expect(Date.now() - began).toBeLessThan(10_000);
      await inFlight;
    } finally {
      agent.destroy();
      await busy.stop();
    }
  });

  it('serve refuses contradictory options with what to do', async () => {
    const both = await relayCli(['serve', '--data', '/tmp/x', '--database', 'postgres://localhost/x']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/not both/);
    const halfTls = await relayCli(['serve', '--data', '/tmp/x', '--tls-cert', 'cert.pem']);
    expect(halfTls.stderr).toMatch(/--tls-cert and --tls-key go together/);
  });
});
