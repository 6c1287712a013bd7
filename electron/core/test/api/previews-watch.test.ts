import { CoreApiClient, createMemoryTransportPair } from '@hangar/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import * as processes from '../../../../test/support/processes.js';
import { CoreApiServer } from '../../src/api/index.js';
import { HangarCore } from '../../src/core.js';
import type { Platform } from '../../src/platform.js';
import { cleanupAfterEach, pairingCode, tempHome } from './agent-fixture.js';

const quiet = pino({ level: 'silent' });

/**
 * previews.watch through the core API, as windows say it: the core has its hosts watch their
 * listening ports while at least one connected window watches, and lets them stop when the last
 * one says so or goes. The agent's debug log says when its watch starts and stops.
 */
describe('previews.watch: the hosts look while a window watches', () => {
  const cleanup = cleanupAfterEach();

  it('two windows: the watch runs until the last one stops watching or goes, however often each says so', async () => {
    const dataDir = processes.tempDir('watch-agent');
    cleanup.push(() => processes.removeDir(dataDir));
    cleanup.push(() => processes.killTmuxServer(dataDir));
    const agent = await processes.startAgentProcess(dataDir, { logLevel: 'debug' });
    cleanup.push(() => agent.stop());
    const logged = (message: string) =>
      agent
        .stderr()
        .split('\n')
        .filter((line) => line.includes(`"msg":"${message}"`)).length;
    const until = async (what: string, test: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!test()) {
        if (Date.now() > deadline) throw new Error(`not within 10 s: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    const home = tempHome(cleanup, 'watch-home');
    const core = await HangarCore.open({ home, logger: quiet });
    cleanup.push(() => core.dispose());
    const platform: Platform = {
      kind: 'web',
      openExternal: async () => undefined,
      showNotification: () => undefined,
      downloadsDir: () => home,
    };
    const server = new CoreApiServer(core, platform, { live: false });
    cleanup.push(() => server.dispose());
    const connect = (): CoreApiClient => {
      const [client, served] = createMemoryTransportPair();
      server.serve(served, 'ui');
      const api = new CoreApiClient(client);
      cleanup.push(() => api.dispose());
      return api;
    };
    const first = connect();
    const second = connect();
    await first.call('hosts.add', { name: 'mini', address: agent.address, code: await pairingCode(agent) });
    /** A round trip to the agent through the core, after what was said before it. */
    const settle = async () => void (await first.call('previews.list', { host: 'mini' }));

    await settle();
    expect(logged('port watch started')).toBe(0);
    await first.call('previews.watch', { watch: true });
    await first.call('previews.watch', { watch: true });
    await second.call('previews.watch', { watch: true });
    await until('the watch starts', () => logged('port watch started') === 1);
    await first.call('previews.watch', { watch: false });
    await settle();
    expect(logged('port watch stopped')).toBe(0); // the second still watches
    await second.call('previews.watch', { watch: false });
    await until('the watch stops', () => logged('port watch stopped') === 1);

    // A window that goes while it watches stops it too.
    await second.call('previews.watch', { watch: true });
    await until('the watch starts again', () => logged('port watch started') === 2);
    second.dispose();
    await until('the watch stops with the window', () => logged('port watch stopped') === 2);
    // Bad input is refused with the field, and changes nothing.
    await expect(first.call('previews.watch', { watch: 'yes' } as never)).rejects.toMatchObject({
      code: 'E_BAD_REQUEST',
      message: expect.stringMatching(/watch/),
    });
    await settle();
    expect(logged('port watch started')).toBe(2);
  });
});
