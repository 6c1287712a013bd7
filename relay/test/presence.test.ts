import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import {
  agentLinkBytes,
  makeStatement,
  toHex,
  verifyStatement,
  type RelayToAgent,
  type StoredStatement,
} from '@hangar/shared';
import {
  agentSocket,
  deviceSocket,
  enroll,
  login,
  signup,
  msUntilOffline,
  waitFor,
  ownerWithHost,
  describeEachStorage,
  endorse,
  revoke,
} from './support/relay-fixture.js';

const AGENT_CHILD = fileURLToPath(new URL('./support/agent-child.mjs', import.meta.url));

describeEachStorage('presence', (relay) => {
  it('a host whose process is killed (kill -9) shows offline within 10 s', async () => {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const device = deviceSocket(relay.url, owner);
    const child = spawn(process.execPath, [AGENT_CHILD], {
      env: {
        ...process.env,
        RELAY_URL: relay.url,
        HOST_ID: hostId,
        HOST_KEY_PEM: host.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the agent child did not come online in 10 s')), 10_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          if ((JSON.parse(line) as { state: string }).state === 'online') {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await waitFor('online at the device', () => device.hosts.get(hostId)?.online === true);
      const killedAt = performance.now();
      child.kill('SIGKILL');
      expect(await msUntilOffline(device, hostId, killedAt)).toBeLessThan(10_000);
    } finally {
      child.kill('SIGKILL');
      device.socket.dispose();
    }
  });

  it('a host whose network vanishes (its socket stops answering heartbeats) shows offline within 10 s', async () => {
    const { owner, host, hostId } = await ownerWithHost(relay.client);
    const device = deviceSocket(relay.url, owner);
    // A bare socket that authenticates and then never says another word, like a cut cable.
    const socket = new WebSocket(`${relay.url.replace('http', 'ws')}/v1/agent`);
    try {
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as RelayToAgent;
        if (message.type !== 'challenge') return;
        const signature = toHex(
          host.signer.sign(agentLinkBytes({ relayOrigin: message.relay_origin, challenge: message.challenge })),
        );
        socket.send(JSON.stringify({ type: 'auth', host_id: hostId, signature }));
      });
      await waitFor('online at the device', () => device.hosts.get(hostId)?.online === true);
      const silentFrom = performance.now();
      expect(await msUntilOffline(device, hostId, silentFrom)).toBeLessThanOrEqual(10_000);
    } finally {
      socket.terminate();
      device.socket.dispose();
    }
  });

  it('an agent that answers the challenge with another key is refused', async () => {
    const { hostId } = await ownerWithHost(relay.client);
    const impostor = (await import('./support/relay-fixture.js')).newKey();
    const agent = agentSocket(relay.url, hostId, impostor);
    try {
      const state = await new Promise<string>((resolve) =>
        agent.onState((s) => s.state === 'offline' && resolve(s.error.message)),
      );
      expect(state).toMatch(/4001/);
      expect(agent.isWelcomed).toBe(false);
    } finally {
      agent.dispose();
    }
  });

  it('an approval reaches a connected agent at once, and an agent that connects later catches up from its seq', async () => {
    const owner = await signup(relay.client);
    const phone = await login(relay.client, owner.email);
    const { host, hostId } = await enroll(relay.client, owner);
    const received: StoredStatement[] = [];
    const connected = agentSocket(relay.url, hostId, host);
    connected.onStatements((statements) => received.push(...statements));
    try {
      await waitFor('agent online', () => connected.isWelcomed);
      const { seq } = await endorse(relay.client, owner, phone, 'phone');
      expect(seq).toBe(1);
      const live = await waitFor('the statement at the connected agent', () => received.find((s) => s.seq === 1));
      expect(verifyStatement(live)).toBe(true);
      expect(live.signer_device_key).toBe(owner.key.publicKey);
    } finally {
      connected.dispose();
    }
    const revoked = await revoke(relay.client, owner, phone, 'phone');
    expect(revoked.seq).toBe(2);

    // The host was offline for the revocation; it connects saying it has seq 1.
    const later: StoredStatement[] = [];
    const reconnected = agentSocket(relay.url, hostId, host, { seq: () => 1 });
    reconnected.onStatements((statements) => later.push(...statements));
    try {
      const caughtUp = await waitFor('the missed revocation', () => later.find((s) => s.seq === 2));
      expect(caughtUp.kind).toBe('revoke');
      expect(later.map((s) => s.seq)).toEqual([2]);
    } finally {
      reconnected.dispose();
    }
    // The revoked phone lost its relay session.
    const devices = await relay.client.call('devices.list', {}, { accessToken: owner.session.access_token });
    expect(devices.devices.find((d) => d.device_id === phone.session.device.device_id)?.status).toBe('revoked');
    await expect(
      relay.client.call('auth.refresh', { refresh_token: phone.session.refresh_token }),
    ).rejects.toMatchObject({ code: 'E_AUTH_DEVICE_REVOKED' });
  });

  it('a trusted device hears when a new device asks to join; a pending device cannot approve itself or others', async () => {
    const owner = await signup(relay.client);
    const laptop = deviceSocket(relay.url, owner);
    const pendingSeen: string[] = [];
    laptop.socket.onDevicePending((device) => pendingSeen.push(device.name));
    try {
      await waitFor('laptop socket ready', () => laptop.socket.isReady);
      const tablet = await login(relay.client, owner.email, undefined, 'tablet');
      await waitFor('device.pending for the tablet', () => pendingSeen.includes('tablet'));
      const statement = makeStatement(tablet.key.signer, {
        kind: 'endorse',
        account_id: owner.session.account.account_id,
        subject_device_key: owner.key.publicKey,
        subject_name: 'laptop',
        issued_at: Date.now(),
      });
      await expect(
        relay.client.call(
          'devices.endorse',
          { device_id: owner.session.device.device_id, statement },
          { accessToken: tablet.session.access_token },
        ),
      ).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
      // A statement by the owner about another device than the one named is refused too.
      const wrongSubject = makeStatement(owner.key.signer, {
        kind: 'endorse',
        account_id: owner.session.account.account_id,
        subject_device_key: toHex(new Uint8Array(32).fill(7)),
        subject_name: 'tablet',
        issued_at: Date.now(),
      });
      await expect(
        relay.client.call(
          'devices.endorse',
          { device_id: tablet.session.device.device_id, statement: wrongSubject },
          { accessToken: owner.session.access_token },
        ),
      ).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
    } finally {
      laptop.socket.dispose();
    }
  });
});
