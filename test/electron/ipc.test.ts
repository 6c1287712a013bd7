import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { UiClient } from '../../electron/core/test/api/ui-client.js';
import { CoreApiServer } from '../../electron/core/src/api/index.js';
import { HangarCore } from '../../electron/core/src/core.js';
import {
  PORT_CHANNEL,
  PORT_REQUEST_CHANNEL,
  wirePortRequests,
  type IpcEventLike,
} from '../../electron/main/src/ipc.js';
import { windowOpenHandler } from '../../electron/main/src/external-links.js';
import { guardNavigation, runSingleInstance, windowOptions } from '../../electron/main/src/window-options.js';
import { portTransport, type PortLike } from '../../electron/main/src/port-transport.js';
import { ROOT, removeDir, tempDir } from '../support/processes.js';

/** Node's MessagePort dressed as Electron's MessagePortMain (which emits {data, ports} events). */
function asPortMain(port: MessagePort): PortLike {
  return {
    postMessage: (message) => port.postMessage(message),
    start: () => port.start(),
    close: () => port.close(),
    on: (event: 'message' | 'close', listener: (event: { data: unknown }) => void) =>
      event === 'message' ? port.on('message', (data: unknown) => listener({ data })) : port.on('close', listener),
  } as PortLike;
}

/** A stand-in for a window's webContents: records what main sends it. */
class FakeSender extends EventEmitter {
  readonly received: { channel: string; ports: PortLike[] }[] = [];
  constructor(readonly id: number) {
    super();
  }
  postMessage(channel: string, _message: unknown, transfer: PortLike[]): void {
    this.received.push({ channel, ports: transfer });
  }
}

const newChannel = () => {
  const { port1, port2 } = new MessageChannel();
  return { port1: asPortMain(port1), port2: asPortMain(port2) };
};

const OUR_PAGE = 'app://hangar/';

describe('Electron main hands each window a port to the core', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  const request = (ipcMain: EventEmitter, sender: FakeSender, url = OUR_PAGE) =>
    ipcMain.emit(PORT_REQUEST_CHANNEL, { sender, senderFrame: { url } } satisfies IpcEventLike);

  it('a window of ours gets a port that carries the core API', async () => {
    const home = tempDir('ipc');
    cleanup.push(() => removeDir(home));
    const core = await HangarCore.open({ home, logger: pino({ level: 'silent' }) });
    cleanup.push(() => core.dispose());
    const api = new CoreApiServer(core, {
      kind: 'electron',
      openExternal: async () => undefined,
      showNotification: () => undefined,
      downloadsDir: () => home,
    });
    cleanup.push(() => api.dispose());
    const ipcMain = new EventEmitter();
    const wiring = wirePortRequests({
      ipcMain,
      createChannel: newChannel,
      serve: (transport) => api.serve(transport),
      isTrustedUrl: (url) => url.startsWith('app://hangar/'),
    });
    cleanup.push(() => wiring.dispose());

    const sender = new FakeSender(1);
    request(ipcMain, sender);
    expect(sender.received).toHaveLength(1);
    expect(sender.received[0]!.channel).toBe(PORT_CHANNEL);
    const ui = new UiClient(portTransport(sender.received[0]!.ports[0]!));
    cleanup.push(() => ui.close());
    expect(await ui.call('hosts.list', {})).toEqual({ hosts: [] });
    await expect(ui.callUnchecked('sessions.kill', { host: 'x', name: 'bad name' })).rejects.toMatchObject({
      code: 'E_BAD_REQUEST',
    });
    expect(api.connectionCount).toBe(1);
  });

  it('a page that is not ours gets no port', () => {
    const ipcMain = new EventEmitter();
    const refused: string[] = [];
    let served = 0;
    const wiring = wirePortRequests({
      ipcMain,
      createChannel: newChannel,
      serve: () => {
        served++;
        return { dispose: () => undefined };
      },
      isTrustedUrl: (url) => url.startsWith('app://hangar/'),
      onRefused: (url) => refused.push(url),
    });
    const sender = new FakeSender(2);
    request(ipcMain, sender, 'https://evil.example/');
    expect(sender.received).toEqual([]);
    expect(served).toBe(0);
    expect(refused).toEqual(['https://evil.example/']);
    wiring.dispose();
  });

  it('a reload replaces the window’s connection and a closed window leaves none behind', async () => {
    const ipcMain = new EventEmitter();
    const live = new Set<number>();
    let next = 0;
    const channels: ReturnType<typeof newChannel>[] = [];
    const wiring = wirePortRequests({
      ipcMain,
      createChannel: () => {
        const channel = newChannel();
        channels.push(channel);
        return channel;
      },
      serve: () => {
        const id = next++;
        live.add(id);
        return { dispose: () => void live.delete(id) };
      },
      isTrustedUrl: () => true,
    });
    const sender = new FakeSender(3);
    request(ipcMain, sender);
    request(ipcMain, sender);
    expect([...live]).toEqual([1]);
    sender.emit('destroyed');
    expect(live.size).toBe(0);
    wiring.dispose();
    expect(ipcMain.listenerCount(PORT_REQUEST_CHANNEL)).toBe(0);
    for (const { port1, port2 } of channels) {
      port1.close();
      port2.close();
    }
  });

  it('the preload uses the same channel names as main, and exposes only the narrow bridge', () => {
    const preload = readFileSync(join(ROOT, 'electron', 'preload', 'src', 'preload.cts'), 'utf8');
    expect(preload).toContain(`'${PORT_REQUEST_CHANNEL}'`);
    expect(preload).toContain(`'${PORT_CHANNEL}'`);
    expect(preload.match(/exposeInMainWorld\(/g)).toHaveLength(1);
    expect(preload).not.toMatch(/exposeInMainWorld\([^)]*ipcRenderer\s*[,}]/);
  });

  it('the window is sandboxed with context isolation and no Node', () => {
    const options = windowOptions({ width: 800, height: 600, maximized: false }, '/the/preload.cjs');
    expect(options.webPreferences).toMatchObject({
      preload: '/the/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    });
  });

  it('a second launch quits and starts nothing; the first one starts', () => {
    const launch = (locked: boolean) => {
      const calls: string[] = [];
      const app = {
        requestSingleInstanceLock: () => locked,
        quit: () => calls.push('quit'),
      };
      runSingleInstance(app, () => calls.push('start'));
      return calls;
    };
    expect(launch(true)).toEqual(['start']);
    expect(launch(false)).toEqual(['quit']);
  });
});

describe('Electron main and links the page opens', () => {
  it('sends web pages (terminal links, previews) to the browser and opens nothing inside the app', async () => {
    const opened: string[] = [];
    const failures: string[] = [];
    const handler = windowOpenHandler(
      async (url) => {
        if (url.includes('broken')) throw new Error('no browser');
        opened.push(url);
      },
      (_error, url) => failures.push(url),
    );
    for (const url of [
      'http://localhost:5173/',
      'https://example.com/a?b',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'vscode://open?x',
      'http://broken.example/',
    ]) {
      expect(handler({ url })).toEqual({ action: 'deny' });
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(opened).toEqual(['http://localhost:5173/', 'https://example.com/a?b']);
    expect(failures).toEqual(['http://broken.example/']);
    // The window wires that handler, and its page cannot navigate off the app.
    const handlers: { open?: typeof handler; navigate?: (e: { preventDefault(): void }, url: string) => void } = {};
    guardNavigation(
      {
        setWindowOpenHandler: (h) => (handlers.open = h),
        on: (_event, listener) => (handlers.navigate = listener),
      },
      handler,
      (url) => url.startsWith('app://hangar/'),
    );
    expect(handlers.open).toBe(handler);
    const prevented: string[] = [];
    for (const url of ['app://hangar/jobs', 'https://example.com/', 'file:///etc/passwd'])
      handlers.navigate!({ preventDefault: () => prevented.push(url) }, url);
    expect(prevented).toEqual(['https://example.com/', 'file:///etc/passwd']);
  });
});
