import fc from 'fast-check';
import { Mux, SCHEMA_VERSION, encodeFrame, type FrameTransport } from '@hangar/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { connectToHost } from '../../electron/core/src/link/connect.js';
import { HangarCore } from '../../electron/core/src/index.js';
import { usePairedHost } from '../support/paired-host.js';

/**
 * Hostile input over an authenticated link: random control messages and random frames never
 * crash the agent; the offending link gets error answers or is closed with a reason, and other
 * links keep working.
 */
describe('bad input from a paired device', () => {
  const box = usePairedHost({ shared: true });
  let core: HangarCore;

  beforeAll(async () => {
    core = await HangarCore.open({ home: box.home });
  });

  afterAll(async () => {
    await core?.dispose();
  });

  const openRawLink = async (): Promise<FrameTransport> => {
    const host = core.registry.get('box');
    const key = await loadOrCreateDeviceKey(box.home);
    const connected = await connectToHost({
      address: host.address,
      deviceKey: key.privateKey,
      deviceName: 'fuzzer',
      pinned: { agent_key: host.agent_key, cert_fingerprint: host.cert_fingerprint },
    });
    return connected.transport;
  };

  /** Sends control JSON on a fresh link and collects what comes back for a moment. */
  const sendControls = async (messages: string[]) => {
    const mux = new Mux(await openRawLink(), { role: 'client' });
    const answers: unknown[] = [];
    let closedWith: string | undefined;
    mux.onControl((json) => answers.push(JSON.parse(json)));
    mux.onClose((reason) => {
      closedWith = reason.code;
    });
    for (const message of messages) {
      if (mux.closed) break;
      mux.sendControl(message);
    }
    await new Promise((r) => setTimeout(r, 150));
    mux.dispose();
    return { answers, closedWith };
  };

  const healthy = async () => {
    const info = await core.hostInfo('box');
    expect(info.session_limit).toBeGreaterThan(0);
    expect(box.agent.child.exitCode).toBeNull();
  };

  it('answers malformed requests with errors naming the problem, and keeps serving others', async () => {
    const { answers } = await sendControls([
      JSON.stringify({
        schema_version: SCHEMA_VERSION,
        kind: 'request',
        id: 1,
        method: 'session.create',
        params: { name: 42 },
      }),
      JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id: 2, method: 'no.such.method', params: {} }),
      JSON.stringify({ schema_version: 99, kind: 'request', id: 3, method: 'host.info', params: {} }),
    ]);
    // Answers come as each request finishes, not in request order. Events may come between them
    // whenever the host has news (a port something on this machine began listening on): not answers.
    const byId = answers
      .filter((message) => (message as { kind?: string }).kind === 'response')
      .sort((a, b) => (a as { id: number }).id - (b as { id: number }).id);
    expect(byId).toEqual([
      expect.objectContaining({
        id: 1,
        ok: false,
        error: expect.objectContaining({ code: 'E_BAD_REQUEST', message: expect.stringMatching(/name/) }),
      }),
      expect.objectContaining({
        id: 2,
        ok: false,
        error: expect.objectContaining({ code: 'E_BAD_REQUEST', message: expect.stringMatching(/unknown method/) }),
      }),
      expect.objectContaining({
        id: 3,
        ok: false,
        error: expect.objectContaining({ code: 'E_BAD_REQUEST', message: expect.stringMatching(/schema_version/) }),
      }),
    ]);
    await healthy();
    expect(await core.listSessions('box')).toEqual([]);
  });

  it('random control messages never crash the agent or create anything', async () => {
    const method = fc.constantFrom(
      'host.info',
      'session.create',
      'session.kill',
      'session.attach',
      'terminal.resize',
      'job.submit',
      'x',
    );
    const request = fc.record({
      schema_version: fc.oneof(fc.constant(SCHEMA_VERSION), fc.anything()),
      kind: fc.oneof(fc.constant('request'), fc.string()),
      id: fc.oneof(fc.nat(), fc.anything()),
      method: fc.oneof(method, fc.anything()),
      params: fc.anything(),
    });
    const message = fc.oneof(
      request.map((r) => JSON.stringify(r)),
      fc.json(),
      fc.string(),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (messages) => {
        const { closedWith } = await sendControls(messages);
        if (closedWith !== undefined) expect(closedWith).toMatch(/E_PROTOCOL|closed|E_BAD_REQUEST/);
        await healthy();
      }),
      { numRuns: 25 },
    );
    // Random params may not create sessions by accident: names are validated.
    const sessions = await core.listSessions('box');
    for (const s of sessions) await core.killSession('box', s.name);
  });

  it('random binary frames close only the offending link', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 64 }), { minLength: 1, maxLength: 6 }),
        async (frames) => {
          const transport = await openRawLink();
          for (const frame of frames) if (!transport.closed) transport.send(frame);
          // A well-formed frame on an unknown stream too.
          if (!transport.closed)
            transport.send(encodeFrame({ type: 'data', stream: 12345, offset: 0, payload: new Uint8Array(3) }));
          await new Promise((r) => setTimeout(r, 100));
          transport.close();
          await healthy();
        },
      ),
      { numRuns: 20 },
    );
  });
});
