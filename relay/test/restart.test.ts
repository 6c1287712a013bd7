import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '@hangar/shared';
import { agentSocket, deviceSocket, enroll, login, signup, tempDir } from './support/relay-fixture.js';
import { waitFor } from './support/relay-fixture.js';
import { startRelayProcess } from './support/relay-process.js';

describe('a relay that crashes', () => {
  it('kill -9 and restart loses no account, host or device, and agents and devices reconnect by themselves', async () => {
    const data = tempDir('crash');
    const common = ['--data', data, '--password-hash-cost', '10', '--rate-limit-scale', '100'];
    let relay = await startRelayProcess(['--listen', '127.0.0.1:0', ...common]);
    const url = relay.url;
    const client = new RelayClient({ url });
    const owner = await signup(client);
    const phone = await login(client, owner.email);
    const { host, hostId } = await enroll(client, owner);
    const agent = agentSocket(url, hostId, host);
    const device = deviceSocket(url, owner);
    try {
      await waitFor('host online before the crash', () => device.hosts.get(hostId)?.online === true);
      let reconnects = 0;
      agent.onState((state) => state.state === 'online' && reconnects++);

      await relay.crash();
      await waitFor('the device to notice', () => !device.socket.isReady);
      relay = await startRelayProcess(['--listen', `127.0.0.1:${new URL(url).port}`, ...common]);

      await waitFor('the agent back online by itself', () => reconnects >= 1, 15_000);
      await waitFor(
        'the device back, seeing the host online',
        () => device.socket.isReady && device.hosts.get(hostId)?.online === true,
        15_000,
      );
      const hosts = await client.call('hosts.list', {}, { accessToken: owner.session.access_token });
      expect(hosts.hosts.map((h) => h.host_id)).toEqual([hostId]);
      const devices = await client.call('devices.list', {}, { accessToken: owner.session.access_token });
      expect(devices.devices.map((d) => d.device_id).sort()).toEqual(
        [owner.session.device.device_id, phone.session.device.device_id].sort(),
      );
      // Sessions survive too: the refresh token made before the crash still works once.
      await client.call('auth.refresh', { refresh_token: phone.session.refresh_token });
      await login(client, owner.email, owner.key, 'laptop');
    } finally {
      agent.dispose();
      device.socket.dispose();
      await relay.stop();
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('a relay restarted after kill -9 shows hosts offline until their agents come back', async () => {
    const data = tempDir('stale');
    const common = ['--data', data, '--password-hash-cost', '10', '--rate-limit-scale', '100'];
    let relay = await startRelayProcess(['--listen', '127.0.0.1:0', ...common]);
    try {
      const client = new RelayClient({ url: relay.url });
      const owner = await signup(client);
      const { host, hostId } = await enroll(client, owner);
      const agent = agentSocket(relay.url, hostId, host);
      await waitFor('agent online', () => agent.isWelcomed);
      await relay.crash();
      agent.dispose(); // the host goes away while the relay is down: its row still says online
      relay = await startRelayProcess(['--listen', `127.0.0.1:${new URL(relay.url).port}`, ...common]);
      const listed = await new RelayClient({ url: relay.url }).call(
        'hosts.list',
        {},
        { accessToken: owner.session.access_token },
      );
      expect(listed.hosts[0]?.online).toBe(false);
    } finally {
      await relay.stop();
      rmSync(data, { recursive: true, force: true });
    }
  });
});
