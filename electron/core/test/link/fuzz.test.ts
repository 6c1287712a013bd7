import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeFrame, LinkMessage, SCHEMA_VERSION, toHex, randomNonce } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { Cleanup, newDeviceKey, startTestAgent, reconnect } from './fixture.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Sends `messages` as a raw peer would and resolves with what the agent answered before closing. */
function rawPeer(address: string, messages: (Uint8Array | string)[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${address}/link`, { rejectUnauthorized: false });
    const answers: unknown[] = [];
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('agent neither answered nor closed'));
    }, 5000);
    ws.on('open', () => messages.forEach((message) => ws.send(message)));
    ws.on('message', (data: Buffer) => answers.push(JSON.parse(data.subarray(1).toString('utf8'))));
    ws.on('error', () => undefined);
    ws.on('close', () => {
      clearTimeout(timer);
      resolve(answers);
    });
  });
}

const hello = () =>
  encodeFrame({
    type: 'control',
    json: JSON.stringify({
      schema_version: SCHEMA_VERSION,
      kind: 'link.hello',
      mode: 'pair',
      device_key: toHex(randomNonce()),
      device_name: 'fuzz',
      nonce: toHex(randomNonce()),
    }),
  });

describe('garbage on the link', () => {
  it('never crashes the agent, is refused with E_PROTOCOL, and real devices still pair', async () => {
    const agent = await startTestAgent(cleanup, { pairRateLimit: { burst: 1000, perSecond: 1000 } });
    const code = agent.issueCode();
    const garbage = fc.oneof(
      fc.jsonValue().map((value) => encodeFrame({ type: 'control', json: JSON.stringify(value) })),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.string({ maxLength: 100 }),
      fc
        .record({
          kind: fc.constantFrom('link.hello', 'link.proof', 'link.welcome', 'link.refused'),
          rest: fc.dictionary(fc.string(), fc.jsonValue()),
        })
        .map(({ kind, rest }) =>
          encodeFrame({ type: 'control', json: JSON.stringify({ ...rest, schema_version: SCHEMA_VERSION, kind }) }),
        ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(garbage, { minLength: 1, maxLength: 3 }),
        async (validHelloFirst, messages) => {
          const answers = await rawPeer(agent.address, validHelloFirst ? [hello(), ...messages] : messages);
          for (const answer of answers) {
            const parsed = LinkMessage.parse(answer);
            if (parsed.kind === 'link.refused') expect(['E_PROTOCOL', 'E_AUTH_BAD_CODE']).toContain(parsed.error.code);
          }
        },
      ),
      { numRuns: 60 },
    );
    expect(agent.pairedKeys()).toEqual([]);
    const deviceKey = newDeviceKey();
    const paired = await connectToHost({ address: agent.address, deviceKey, deviceName: 'real', pairingCode: code });
    paired.transport.close();
    const again = await reconnect(agent, deviceKey, paired, 'real');
    again.transport.close();
  });
});
