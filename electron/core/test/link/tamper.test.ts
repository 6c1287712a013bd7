import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, type HangarError } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { rawPublicKey } from '../../src/identity/device-key.js';
import { Cleanup, eventually, newDeviceKey, nextFrame, startTestAgent, pairDevice, pinsOf } from './fixture.js';
import { refusal } from '../../../../test/support/refusal.js';
import { startTcpProxy, startTlsMitm } from './proxies.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('a changed host', () => {
  async function pairedAgent() {
    const agent = await startTestAgent(cleanup);
    return { agent, ...(await pairDevice(agent)) };
  }

  it('is refused when its agent key was regenerated', async () => {
    const { agent, deviceKey, pinned } = await pairedAgent();
    await rm(join(agent.dataDir, 'identity', 'agent_ed25519.pem'));
    await agent.restart();
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', pinned, hostName: 'mini' }),
    );
    expect(error.code).toBe('E_AUTH_HOST_KEY_CHANGED');
    expect(error.message).toContain(pinned.agent_key);
    expect(error.message).toContain(`hangar hosts rm mini && hangar hosts add mini ${agent.address} --code`);
    expect(agent.links).toHaveLength(1); // the pairing connection only
  });

  it('is refused when its TLS certificate changed, naming both fingerprints', async () => {
    const { agent, deviceKey, pinned } = await pairedAgent();
    await rm(join(agent.dataDir, 'identity', 'tls.crt'));
    await rm(join(agent.dataDir, 'identity', 'tls.key'));
    await agent.restart();
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey, deviceName: 'laptop', pinned, hostName: 'mini' }),
    );
    expect(error.code).toBe('E_AUTH_HOST_KEY_CHANGED');
    expect(error.message).toContain(`expected ${pinned.cert_fingerprint}`);
    expect(error.details?.['seen']).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('reports an unreachable host with what to check', async () => {
    const agent = await startTestAgent(cleanup);
    const address = agent.address;
    await agent.server.dispose();
    const error = await refusal(
      connectToHost({ address, deviceKey: newDeviceKey(), deviceName: 'x', pairingCode: '123-456' }),
    );
    expect(error.code).toBe('E_HOST_UNREACHABLE');
    expect(error.message).toContain('hangar-agent is running');
  });
});

describe('an attacker on the path', () => {
  for (const direction of ['to-server', 'to-client'] as const) {
    for (const index of [0, 1, 2, 3]) {
      it(`flipping a byte in ${direction} chunk ${index} breaks pairing and pairs nothing`, async () => {
        const agent = await startTestAgent(cleanup, { pairRateLimit: { burst: 100, perSecond: 100 } });
        const code = agent.issueCode();
        const proxy = await startTcpProxy(cleanup, agent.address, (chunk, dir, i) => {
          if (dir === direction && i === index) chunk[chunk.length - 1]! ^= 0x40;
          return chunk;
        });
        const deviceKey = newDeviceKey();
        const result = await connectToHost({
          address: proxy.address,
          deviceKey,
          deviceName: 'x',
          pairingCode: code,
          timeoutMs: 3000,
        }).then(
          (connected) => {
            connected.transport.close();
            return 'connected';
          },
          (error: HangarError) => error.code,
        );
        const ownKey = Buffer.from(rawPublicKey(deviceKey)).toString('hex');
        if (result === 'connected' || direction === 'to-client') {
          // A flip that lands after the agent verified everything (in its welcome, on the way
          // back) only costs the genuine device its pin; no other key can ever get in.
          expect(agent.pairedKeys().filter((key) => key !== ownKey)).toEqual([]);
        } else {
          expect(agent.pairedKeys()).toEqual([]);
        }
        // The agent survives, and the code still works directly unless it was spent.
        if (agent.pairedKeys().length === 0) {
          await pairDevice(agent, 'y', newDeviceKey(), code);
        }
      });
    }
  }

  it('a TLS man in the middle during pairing is refused (exporter mismatch) and pairs nothing', async () => {
    const agent = await startTestAgent(cleanup);
    const code = agent.issueCode();
    const mitm = await startTlsMitm(cleanup, agent.address);
    const error = await refusal(
      connectToHost({ address: mitm.address, deviceKey: newDeviceKey(), deviceName: 'x', pairingCode: code }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(error.message).toContain('intercepting');
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('a man in the middle that swaps the nonces is refused', async () => {
    const agent = await startTestAgent(cleanup);
    const code = agent.issueCode();
    const mitm = await startTlsMitm(cleanup, agent.address, (message) => {
      const text = message.subarray(1).toString('utf8');
      if (message[0] !== 1 || !text.includes('"nonce"')) return message;
      const json = JSON.parse(text) as { nonce: string };
      json.nonce = [...json.nonce].reverse().join('');
      return Buffer.from(encodeFrame({ type: 'control', json: JSON.stringify(json) }));
    });
    const error = await refusal(
      connectToHost({ address: mitm.address, deviceKey: newDeviceKey(), deviceName: 'x', pairingCode: code }),
    );
    expect(['E_AUTH_BAD_CODE', 'E_AUTH_BAD_SIGNATURE']).toContain(error.code);
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('a man in the middle is refused outright once the host is pinned', async () => {
    const agent = await startTestAgent(cleanup);
    const { deviceKey, paired } = await pairDevice(agent, 'x');
    const mitm = await startTlsMitm(cleanup, agent.address);
    const error = await refusal(
      connectToHost({
        address: mitm.address,
        deviceKey,
        deviceName: 'x',
        pinned: pinsOf(paired),
      }),
    );
    expect(error.code).toBe('E_AUTH_HOST_KEY_CHANGED');
  });

  it('a packet capture shows neither the pairing code nor what flows over the link', async () => {
    const agent = await startTestAgent(cleanup);
    const code = agent.issueCode();
    const proxy = await startTcpProxy(cleanup, agent.address);
    const deviceKey = newDeviceKey();
    const paired = await connectToHost({ address: proxy.address, deviceKey, deviceName: 'x', pairingCode: code });
    const marker = 'HANGAR-MARKER-7f3a9c-SECRET-KEYSTROKES';
    await eventually(() => agent.links.length === 1);
    const arrived = nextFrame(agent.links[0]!.transport);
    paired.transport.send(encodeFrame({ type: 'control', json: JSON.stringify({ marker }) }));
    expect(decodeFrame(await arrived)).toEqual({ type: 'control', json: JSON.stringify({ marker }) });
    paired.transport.close();
    const everything = Buffer.concat(proxy.captured);
    expect(everything.length).toBeGreaterThan(500);
    for (const secret of [marker, code, code.replace('-', '')]) {
      expect(everything.includes(Buffer.from(secret))).toBe(false);
    }
  });
});
