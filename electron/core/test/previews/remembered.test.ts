import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, pairingCode, startTestAgent, tempHome } from '../api/agent-fixture.js';
import { HangarCore } from '../../src/core.js';
import { WebServer } from '../../src/web/server.js';
import { connectUi, waitFor } from '../api/ui-client.js';

const quiet = pino({ level: 'silent' });

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', headers: { host: `localhost:${port}` }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('previews a UI opened', () => {
  const cleanup = cleanupAfterEach();

  /** A UI core (web mode) over `home`, as npm start or hangar ui runs one; stop() ends it. */
  const startUiCore = async (home: string) => {
    const core = await HangarCore.open({ home, logger: quiet });
    const web = await WebServer.start({ core, staticDir: home, logger: quiet });
    const ui = await connectUi(web.port, web.secret);
    const stop = async () => {
      ui.close();
      await web.dispose();
      await core.dispose();
    };
    cleanup.push(stop);
    return { core, ui, stop };
  };

  it('are served again by the next UI core at the same address, until closed', async () => {
    const agent = await startTestAgent(cleanup, 'remember-agent');
    const home = tempHome(cleanup, 'remember-home');
    const dev: Server = createServer((_req, res) => res.end('dev server'));
    await new Promise<void>((resolve) => dev.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => dev.close(resolve)));
    const devPort = (dev.address() as AddressInfo).port;

    const first = await startUiCore(home);
    await first.ui.call('hosts.add', { name: 'mini', address: agent.address, code: await pairingCode(agent) });
    await first.ui.call('previews.add', { host: 'mini', port: devPort });
    const { local_port } = await first.ui.call('previews.open', { host: 'mini', port: devPort });
    expect(await get(local_port)).toEqual({ status: 200, body: 'dev server' });
    await first.stop();
    await expect(get(local_port)).rejects.toThrow(/ECONNREFUSED/);

    // npm start again: nobody asks, the preview is back where it was.
    const second = await startUiCore(home);
    await waitFor(() => second.core.previews.localUrl('mini', devPort) !== null, 'the preview served again');
    expect(second.core.previews.localUrl('mini', devPort)).toBe(`http://localhost:${local_port}/`);
    expect(await get(local_port)).toEqual({ status: 200, body: 'dev server' });
    const listed = await second.ui.call('previews.list', { host: 'mini' });
    expect(listed.hosts[0]!.previews[0]!.local_url).toBe(`http://localhost:${local_port}/`);

    // Closed from the UI: gone for good. A second dev server opened after it is the witness: the
    // next core serves remembered previews in the order they were opened, so once the later one
    // is served again, the closed one would have been by then.
    await second.ui.call('previews.close', { host: 'mini', port: devPort });
    const witness: Server = createServer((_req, res) => res.end('witness'));
    await new Promise<void>((resolve) => witness.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => witness.close(resolve)));
    const witnessPort = (witness.address() as AddressInfo).port;
    await second.ui.call('previews.add', { host: 'mini', port: witnessPort });
    await second.ui.call('previews.open', { host: 'mini', port: witnessPort });
    await second.stop();
    const third = await startUiCore(home);
    await waitFor(() => third.core.previews.localUrl('mini', witnessPort) !== null, 'the witness served again');
    expect(third.core.previews.localUrl('mini', devPort)).toBeNull();
    await expect(get(local_port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
