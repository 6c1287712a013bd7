import {
  CoreApiClient,
  CoreTerminal,
  createMemoryTransportPair,
  type CoreEventData,
  type FrameTransport,
} from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, get as httpGet, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Terminal } from '@xterm/headless';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, pairingCode, startTestAgent, tempHome } from './agent-fixture.js';
import type { AgentProcess } from '../../../../test/support/processes.js';
import { openCoreApi } from '../../src/api/in-process-door.js';
import { CoreApiServer } from '../../src/api/index.js';
import { HangarCore } from '../../src/core.js';
import type { Platform } from '../../src/platform.js';
import { waitFor } from './ui-client.js';

const quiet = pino({ level: 'silent' });

/** The hangar command's door, and the window's beside it, on the same procedure table. */
describe('the core API for the hangar command (in-process door)', () => {
  const cleanup = cleanupAfterEach();

  const startAgent = () => startTestAgent(cleanup, 'door-agent');

  /** The hangar command's door over a fresh $HANGAR_HOME, paired with `agent` as "mini". */
  const openDoor = async (agent: AgentProcess) => {
    const home = tempHome(cleanup, 'door-home');
    const api = await openCoreApi({ home, logger: quiet });
    cleanup.push(() => api.dispose());
    await api.call('hosts.add', { name: 'mini', address: agent.address, code: await pairingCode(agent) });
    return { api, home };
  };

  it('a folder submitted as a job is packed and sent by the core, with progress for its op_id; the same tree is not sent twice', async () => {
    const agent = await startAgent();
    const { api, home } = await openDoor(agent);
    const folder = join(home, 'app');
    mkdirSync(folder);
    // Random bytes do not compress: several credit windows' worth, so progress has steps.
    writeFileSync(join(folder, 'blob.bin'), randomBytes(3 * 1024 * 1024));
    writeFileSync(join(folder, 'Makefile'), 'all:\n\ttrue\n');
    const progress: CoreEventData<'progress'>[] = [];
    api.on('progress', (event) => progress.push(event));

    const first = await api.call('jobs.submit', {
      host: 'mini',
      spec: { command: 'wc -c < blob.bin', executor: 'shell' },
      folder,
      op_id: 'upload-1',
    });
    expect(first.upload).toMatchObject({ skipped: false });
    const size = first.upload!.size;
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.every((p) => p.op_id === 'upload-1' && p.label === 'uploading workspace' && p.total === size)).toBe(
      true,
    );
    expect(progress[0]!.done).toBe(0);
    expect(progress.at(-1)!.done).toBe(size);
    const dones = progress.map((p) => p.done);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    const ended = await api.call('jobs.wait', { id: first.job.id });
    expect(ended).toMatchObject({ host: 'mini', job: { state: 'succeeded' } });

    progress.length = 0;
    const second = await api.call('jobs.submit', {
      host: 'mini',
      spec: { command: 'true', executor: 'shell' },
      folder,
      op_id: 'upload-2',
    });
    expect(second.upload).toEqual({ hash: first.upload!.hash, size, skipped: true });
    expect(progress).toEqual([]);
    await api.call('jobs.wait', { host: 'mini', id: second.job.id });
  });

  it('keys typed before the terminal is open are sent once it is, and only once', async () => {
    const agent = await startAgent();
    const { api } = await openDoor(agent);
    await api.call('sessions.create', { host: 'mini', session: { name: 'echo', command: ['cat'] } });
    // Rendered as a terminal would: tmux redraws, so the raw bytes may repeat a line it shows once.
    const screen = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    cleanup.push(() => screen.dispose());
    let rendered = Promise.resolve();
    const terminal = new CoreTerminal(
      api,
      { host: 'mini', session: 'echo', cols: 80, rows: 24 },
      {
        write: (data, done) => {
          const bytes = data.slice();
          rendered = rendered.then(() => new Promise<void>((resolve) => screen.write(bytes, resolve)));
          done();
        },
        status: () => undefined,
        ended: () => undefined,
      },
    );
    cleanup.push(() => terminal.dispose());
    const lines = async (): Promise<string[]> => {
      await rendered;
      const buffer = screen.buffer.active;
      return Array.from({ length: screen.rows }, (_, y) => buffer.getLine(y)?.translateToString(true) ?? '').filter(
        (line) => line !== '',
      );
    };
    // Quoted apart so the line cat prints back cannot be mistaken for the tty's echo of what was typed.
    terminal.write('ear""ly\r');
    await terminal.opened;
    const echoed = ['ear""ly', 'ear""ly'];
    await waitFor(
      async () => JSON.stringify(await lines()) === JSON.stringify(echoed),
      'the early line, echoed and printed back by cat',
    ).catch(async (error) => {
      throw new Error(`${(error as Error).message}; the screen shows ${JSON.stringify(await lines())}`);
    });
    terminal.write('la""ter\r');
    const after = [...echoed, 'la""ter', 'la""ter'];
    await waitFor(async () => JSON.stringify(await lines()) === JSON.stringify(after), 'a later line, after it').catch(
      async (error) => {
        throw new Error(`${(error as Error).message}; the screen shows ${JSON.stringify(await lines())}`);
      },
    );
  });

  describe('beside a window', () => {
    const platform = (home: string): Platform => ({
      kind: 'web',
      openExternal: async () => undefined,
      showNotification: () => undefined,
      downloadsDir: () => home,
    });

    /** One core, served to a hangar command and to a window, each over its own link. */
    const serveBoth = async () => {
      const home = tempHome(cleanup, 'door-both');
      const core = await HangarCore.open({ home, logger: quiet });
      cleanup.push(() => core.dispose());
      const server = new CoreApiServer(core, platform(home), { live: false });
      cleanup.push(() => server.dispose());
      const connect = (door: 'cli' | 'ui'): CoreApiClient => {
        const [client, served]: readonly [FrameTransport, FrameTransport] = createMemoryTransportPair();
        server.serve(served, door);
        const api = new CoreApiClient(client);
        cleanup.push(() => api.dispose());
        return api;
      };
      return { home, cli: connect('cli'), window: connect('ui') };
    };

    it('only the hangar command chooses where artifacts are written; a window gets its Downloads', async () => {
      const { home, cli, window } = await serveBoth();
      const where = { host: 'mini', id: 'j-0123456789', dir: join(home, 'elsewhere') };
      await expect(window.call('artifacts.download', where)).rejects.toMatchObject({
        code: 'E_BAD_REQUEST',
        message: expect.stringMatching(/^dir: only the hangar command chooses where artifacts go/),
      });
      // The hangar command passes that check and meets the next one: there is no such host.
      await expect(cli.call('artifacts.download', where)).rejects.toMatchObject({ code: 'E_HOST_NOT_FOUND' });
    });

    it('a preview the command holds open stops when it leaves; one a window opened stays', async () => {
      const agent = await startAgent();
      const { cli, window } = await serveBoth();
      await cli.call('hosts.add', { name: 'mini', address: agent.address, code: await pairingCode(agent) });
      const dev = await devServer();
      cleanup.push(() => new Promise((resolve) => dev.server.close(resolve)));
      const other = await devServer();
      cleanup.push(() => new Promise((resolve) => other.server.close(resolve)));
      await cli.call('previews.add', { host: 'mini', port: dev.port });
      await cli.call('previews.add', { host: 'mini', port: other.port });

      const held = await cli.call('previews.open', { host: 'mini', port: dev.port, remember: false });
      const shared = await cli.call('previews.open', { host: 'mini', port: other.port, remember: false });
      // The window opens the second one too (remembered): it is no longer the command's alone.
      await window.call('previews.open', { host: 'mini', port: other.port });
      expect(await fetchText(held.local_port)).toBe('dev server');
      expect(await fetchText(shared.local_port)).toBe('dev server');

      cli.dispose();
      await pollUntil(
        async () => (await fetchText(held.local_port).catch((e: Error) => e.message)).includes('ECONNREFUSED'),
        'the held preview to stop with its command',
      );
      expect(await fetchText(shared.local_port)).toBe('dev server');
      const listed = await window.call('previews.list', { host: 'mini' });
      const urls = Object.fromEntries(listed.hosts[0]!.previews.map((p) => [p.port, p.local_url]));
      expect(urls).toEqual({ [dev.port]: null, [other.port]: `http://localhost:${shared.local_port}/` });
    });
  });
});

async function devServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((_request, response) => response.end('dev server'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function fetchText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpGet(
      { host: '127.0.0.1', port, path: '/', headers: { Host: `localhost:${port}` } },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve(body));
      },
    );
    request.on('error', reject);
  });
}

async function pollUntil(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
