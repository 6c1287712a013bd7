import { ControlClient, HOST_EVENTS, HOST_PROCEDURES, Mux } from '@hangar/shared';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/core.js';
import { loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { connectToHost } from '../../electron/core/src/link/connect.js';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, listenInChild } from '../support/processes.js';
import { rawCall } from '../support/raw-call.js';
import { openUiPage, startWebUi, type ServingCli } from '../support/serving-cli.js';

/**
 * The agent's port watch (it reads /proc/net/tcp{,6} every 2 s for dev servers that start) runs
 * only while a linked client watches: the previews view shown in a window, or a client that said
 * preview.watch. Its debug log says when the watch starts and stops: counted here.
 */
describe('the port watch runs only while someone looks at the listening ports', () => {
  const host = usePairedHost({ agent: { logLevel: 'debug' } });
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  /** How often the agent's log says `message` so far. */
  const logged = (message: string) =>
    host.agent
      .stderr()
      .split('\n')
      .filter((line) => line.includes(`"msg":"${message}"`)).length;
  const until = async (what: string, test: () => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`not within ${timeoutMs / 1000} s: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const devServer = async (): Promise<{ child: ChildProcess; port: number }> => {
    const dev = await listenInChild();
    cleanup.push(() => dev.child.kill());
    return dev;
  };
  const openCore = async () => {
    const core = await HangarCore.open({ home: host.home });
    let closing: Promise<void> | undefined;
    const close = () => (closing ??= core.dispose());
    cleanup.push(close);
    const connection = core.connection('box');
    await connection.link();
    return { connection, close };
  };

  it('a linked client that does not watch starts no watch; one that does is told of a new dev server, and its link dropping stops it', async () => {
    // A CLI command, and a client that stays linked and calls (as a window showing terminals does).
    expect((await hangar(host.home, ['preview', 'ls', 'box', '--json'])).code).toBe(0);
    const quiet = await openCore();
    const events: number[][] = [];
    const heard = quiet.connection.on('previews.changed', (data) => events.push(data.listening.map((l) => l.port)), {
      watchPorts: false,
    });
    cleanup.push(() => heard.dispose());
    for (let i = 0; i < 5; i++) await quiet.connection.call('preview.list', {});
    await quiet.connection.call('host.info', {});
    // A watch said wrongly is refused with the field, and starts nothing.
    const mux = await quiet.connection.link();
    for (const params of [{ watch: 'yes' }, {}, { watch: true, ports: [80] }]) {
      await expect(rawCall(mux, 'preview.watch', params)).rejects.toMatchObject({
        code: 'E_BAD_REQUEST',
        message: expect.stringMatching(/watch|ports/),
      });
    }
    expect(logged('port watch started')).toBe(0);

    // Another client watches: the watch starts, and every client is told of a dev server that starts.
    const watcher = await openCore();
    const watch = watcher.connection.watchPorts();
    await until('the watch starts', () => logged('port watch started') === 1);
    const dev = await devServer();
    await until(`previews.changed with port ${dev.port}`, () => events.some((ports) => ports.includes(dev.port)));

    // It stops watching, then watches again, then its link drops: the watch stops each time.
    void watch.dispose();
    await until('the watch stops', () => logged('port watch stopped') === 1);
    const again = watcher.connection.watchPorts();
    await until('the watch starts again', () => logged('port watch started') === 2);
    await watcher.close();
    await until('the watch stops with the link', () => logged('port watch stopped') === 2);
    void again.dispose();

    // Two watchers: the watch runs until the last one leaves.
    const first = quiet.connection.watchPorts();
    const second = await openCore();
    const secondWatch = second.connection.watchPorts();
    await until('the watch starts', () => logged('port watch started') === 3);
    // Each link's calls are handled in order, two links' in any: the second's watch is handled
    // before this answer (else the first's unwatch, on the other link, could come first).
    await second.connection.call('host.info', {});
    void first.dispose();
    await quiet.connection.call('host.info', {}); // first's unwatch was handled before this answer
    expect(logged('port watch stopped')).toBe(2);
    void secondWatch.dispose();
    await until('the watch stops with the last watcher', () => logged('port watch stopped') === 3);
  });

  it('the window watches while its previews view is shown: a dev server started then shows, and switching away stops the watch', async () => {
    const ui: ServingCli = await startWebUi(host.home);
    cleanup.push(() => ui.stop());
    const { browser, page } = await openUiPage(ui, 'box');
    cleanup.push(() => browser.close());
    // The terminals view is shown first: the window is linked, and the host does not look.
    await page.getByRole('button', { name: 'Jobs', exact: true }).click();
    await page.getByRole('button', { name: 'Terminals', exact: true }).click();
    expect(logged('port watch started')).toBe(0);

    await page.getByRole('button', { name: 'Previews', exact: true }).click();
    const previews = page.getByRole('region', { name: 'Previews on box' });
    await previews.getByText('No previews on box. Start a dev server there, or add a port below.').waitFor();
    await until('the watch starts', () => logged('port watch started') === 1);
    const dev = await devServer();
    await previews.getByRole('button', { name: `Add preview box:${dev.port}`, exact: true }).waitFor();

    await page.getByRole('button', { name: 'Terminals', exact: true }).click();
    await until('the watch stops', () => logged('port watch stopped') === 1);

    // From the terminals, the palette offers to add a dev server started since: it looks while open.
    const later = await devServer();
    await page.keyboard.press('Control+K');
    await page.locator('[cmdk-input]').fill(`add preview box:${later.port}`);
    await page
      .getByRole('option', { name: new RegExp(`^Add preview box:${later.port}\\b`) })
      .waitFor({ timeout: 10_000 });
    await page.keyboard.press('Escape');
    await until('the watch stops with the palette', () => logged('port watch stopped') === 2);
  });

  it('a core from before preview.watch (it never says it) is watched for, as before; a core that says it does not watch is not', async () => {
    // This version's core, linked and saying nothing about the ports (a window showing terminals).
    const quiet = await openCore();
    // An older core: its link never says preview.watch, and it still hears of each dev server that starts.
    const record = quiet.connection.host;
    const link = await connectToHost({
      address: record.address,
      deviceKey: (await loadOrCreateDeviceKey(host.home)).privateKey,
      deviceName: 'older core',
      pinned: { agent_key: record.agent_key, cert_fingerprint: record.cert_fingerprint },
    });
    const mux = new Mux(link.transport, { role: 'client' });
    cleanup.push(() => mux.dispose());
    const older = new ControlClient(mux, HOST_PROCEDURES, HOST_EVENTS, { peer: 'box' });
    const events: number[][] = [];
    older.on('previews.changed', (data) => events.push(data.listening.map((l) => l.port)));
    await older.call('preview.list', {});
    await until('the watch starts for the older core', () => logged('port watch started') === 1);
    const dev = await devServer();
    await until(`previews.changed with port ${dev.port}`, () => events.some((ports) => ports.includes(dev.port)));

    // Its link goes: nobody else watches (the quiet core said so), the watch stops.
    mux.dispose();
    await until('the watch stops with the older core', () => logged('port watch stopped') === 1);
    await quiet.connection.call('host.info', {});
    expect(logged('port watch started')).toBe(1);
  });
});
