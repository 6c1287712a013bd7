import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { rawPublicKey } from '../../src/identity/device-key.js';
import {
  Cleanup,
  eventually,
  newDeviceKey,
  nextFrame,
  startTestAgent,
  pairDevice,
  pinsOf,
  reconnect,
} from './fixture.js';
import { refusal } from '../../../../test/support/refusal.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('pairing and reconnecting', () => {
  it('pairs with the printed code, then reconnects with the pins and carries frames both ways', async () => {
    const agent = await startTestAgent(cleanup);
    const { deviceKey, paired } = await pairDevice(agent);
    expect(paired.host.hostname).toBe('test-host');
    expect(agent.pairedKeys()).toEqual([Buffer.from(rawPublicKey(deviceKey)).toString('hex')]);

    const linked = await reconnect(agent, deviceKey, paired);
    cleanup.add(() => linked.transport.close());
    await eventually(() => agent.links.length === 2);
    const serverSide = agent.links[1]!;
    expect(serverSide.device.name).toBe('laptop');

    const toServer = nextFrame(serverSide.transport);
    linked.transport.send(encodeFrame({ type: 'control', json: '{"hello":"agent"}' }));
    expect(decodeFrame(await toServer)).toEqual({ type: 'control', json: '{"hello":"agent"}' });
    const toClient = nextFrame(linked.transport);
    serverSide.transport.send(encodeFrame({ type: 'data', stream: 3, offset: 7, payload: new Uint8Array([1, 2, 3]) }));
    expect(decodeFrame(await toClient)).toMatchObject({ type: 'data', stream: 3, offset: 7 });
  });

  it('refuses a wrong code and pairs nothing', async () => {
    const agent = await startTestAgent(cleanup);
    const code = agent.issueCode();
    const wrong = code === '000-000' ? '000-001' : '000-000';
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'x', pairingCode: wrong }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
    expect(error.message).toMatch(/did not accept the pairing code/);
    expect(error.message).toContain('hangar-agent pair');
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('refuses a code that was already used, saying so', async () => {
    const agent = await startTestAgent(cleanup);
    const code = agent.issueCode();
    (
      await connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'a', pairingCode: code })
    ).transport.close();
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'b', pairingCode: code }),
    );
    expect(error.code).toBe('E_AUTH_CODE_USED');
    expect(error.message).toContain('hangar-agent pair');
    expect(agent.pairedKeys()).toHaveLength(1);
  });

  it('refuses an expired code, saying so', async () => {
    let now = Date.now();
    const agent = await startTestAgent(cleanup, { now: () => now });
    const code = agent.issueCode();
    now += 11 * 60 * 1000;
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'a', pairingCode: code }),
    );
    expect(error.code).toBe('E_AUTH_CODE_EXPIRED');
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('refuses pairing when no code was issued, just as it refuses a wrong code', async () => {
    const agent = await startTestAgent(cleanup);
    const error = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'a', pairingCode: '123-456' }),
    );
    expect(error.code).toBe('E_AUTH_BAD_CODE');
  });

  it('only the newest code works', async () => {
    const agent = await startTestAgent(cleanup);
    const old = agent.issueCode();
    const fresh = agent.issueCode();
    if (old !== fresh) {
      const error = await refusal(
        connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'a', pairingCode: old }),
      );
      expect(error.code).toBe('E_AUTH_BAD_CODE');
    }
    await pairDevice(agent, 'b', newDeviceKey(), fresh);
  });

  it('refuses a device that was never paired', async () => {
    const agent = await startTestAgent(cleanup);
    const { paired } = await pairDevice(agent, 'a');
    const error = await refusal(
      connectToHost({
        address: agent.address,
        deviceKey: newDeviceKey(),
        deviceName: 'stranger',
        pinned: pinsOf(paired),
      }),
    );
    expect(error.code).toBe('E_AUTH_UNKNOWN_DEVICE');
    expect(error.message).toContain('hangar-agent pair');
    expect(agent.links).toHaveLength(1);
  });

  it('burns a code after 5 wrong guesses, so even the right code then fails', async () => {
    let now = Date.now();
    const agent = await startTestAgent(cleanup, { now: () => now });
    const code = agent.issueCode();
    const codes: string[] = [];
    for (let guess = 0; codes.length < 6; guess += 1) {
      const candidate = `${String(guess).padStart(3, '0')}-000`;
      if (candidate !== code) codes.push(candidate);
    }
    const results: string[] = [];
    for (const guess of codes) {
      now += 2000; // past the per-source token bucket, so only the per-code limit applies
      results.push(
        (
          await refusal(
            connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'g', pairingCode: guess }),
          )
        ).code,
      );
    }
    // A guesser is never told that the code burned: every wrong guess gets the same answer.
    expect(results).toEqual(Array(6).fill('E_AUTH_BAD_CODE'));
    now += 2000;
    const right = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'g', pairingCode: code }),
    );
    expect(right.code).toBe('E_AUTH_RATE_LIMITED');
    expect(right.message).toMatch(/too many wrong guesses/);
    expect(agent.pairedKeys()).toEqual([]);
  });

  it('limits pairing attempts to about one per second, saying how long to wait', async () => {
    const agent = await startTestAgent(cleanup);
    agent.issueCode();
    const codes: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      codes.push(
        (
          await refusal(
            connectToHost({
              address: agent.address,
              deviceKey: newDeviceKey(),
              deviceName: 'g',
              pairingCode: '999-999',
            }),
          )
        ).code,
      );
    }
    expect(codes).toContain('E_AUTH_RATE_LIMITED');
    const limited = await refusal(
      connectToHost({ address: agent.address, deviceKey: newDeviceKey(), deviceName: 'g', pairingCode: '999-999' }),
    );
    expect(limited.code).toBe('E_AUTH_RATE_LIMITED');
    expect(limited.message).toMatch(/wait \d+s/);
  });
});
