import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ListeningPort, Mux } from '@hangar/shared';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listenInChild } from '../../../test/support/processes.js';
import { PreviewService } from '../../src/previews/index.js';
import { AgentStore } from '../../src/store/db.js';

/**
 * The previews service as the agent runs it: what a client is told (previews.changed) and what a
 * listing returns, while dev servers start, stop and restart on the host. Linux: the watch's
 * /proc reading is what is under test (macOS asks lsof each time).
 */
describe.runIf(process.platform === 'linux')('the previews watch', () => {
  let dir: string;
  let store: AgentStore;
  let service: PreviewService;
  let told: ListeningPort[][];
  const children: ChildProcess[] = [];

  const startService = (watchIntervalMs: number) => {
    service = new PreviewService({
      db: store.db,
      ownPorts: () => [],
      publish: ((_name: string, data: { listening: ListeningPort[] }) => told.push(data.listening)) as never,
      logger: pino({ level: 'silent' }),
      watchIntervalMs,
    });
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hangar-previews-watch-'));
    store = AgentStore.open(dir);
    told = [];
  });
  afterEach(async () => {
    service?.dispose();
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill();
        await exited;
      }
    }
    store.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (address = '127.0.0.1') => {
    const listener = await listenInChild(address);
    children.push(listener.child);
    return listener;
  };
  /** A server on this port of 127.0.0.1, in a process of its own, as a restarted dev server. */
  const startOn = async (port: number) => {
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('listening'))`,
    ]);
    children.push(child);
    await once(createInterface({ input: child.stdout! }), 'line');
    return child;
  };
  const stop = async (child: ChildProcess) => {
    const exited = once(child, 'exit');
    child.kill();
    await exited;
  };
  /** The first listing a client is told that passes `test`, within 10 s. */
  const toldListing = async (test: (listening: ListeningPort[]) => boolean) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = told.find(test);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no previews.changed like that within 10 s: ${JSON.stringify(told)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  it('a dev server that starts listening is told with its process, and told gone once it stops', async () => {
    startService(50);
    service.setWatching(true);
    const dev = await start('::1');
    // By address too: another process (a test beside this one) may hold the same port number on 127.0.0.1.
    const isDev = (l: { port: number; address: string }) => l.port === dev.port && l.address === '::1';
    const opened = await toldListing((listening) => listening.some(isDev));
    expect(opened.find(isDev)).toEqual({
      port: dev.port,
      address: '::1',
      pid: dev.child.pid,
      process: expect.stringMatching(/^node/),
    });
    const seen = told.length;
    await stop(dev.child);
    await toldListing((listening) => told.indexOf(listening) >= seen && !listening.some(isDev));
    expect((await service.list()).listening.filter(isDev)).toEqual([]);
  });

  it('a port taken over by another process between two looks is told with the new process, not the old one', async () => {
    startService(3_600_000); // only the look that starts the watch runs by itself
    const first = await start();
    // A listing is the baseline the watch compares with: the first server.
    expect((await service.list()).listening).toContainEqual(
      expect.objectContaining({ port: first.port, pid: first.child.pid }),
    );
    await stop(first.child);
    const second = await startOn(first.port);
    service.setWatching(true); // one look: the same address and port as before, another socket
    const now = await toldListing((listening) => listening.some((l) => l.port === first.port));
    expect(now.find((l) => l.port === first.port)?.pid).toBe(second.pid);
    expect((await service.list()).listening.find((l) => l.port === first.port)?.pid).toBe(second.pid);
  });

  it('a link that said preview.watch before the agent noted it linked is not taken for an older core', async () => {
    const logged: string[] = [];
    service = new PreviewService({
      db: store.db,
      ownPorts: () => [],
      publish: (() => undefined) as never,
      logger: pino({ level: 'debug' }, { write: (line: string) => void logged.push(line) }),
      watchIntervalMs: 3_600_000,
      unsaidWatchMs: 20,
    });
    /** A link as the service sees it: open until the test ends. */
    const link = () => ({ closed: false, onClose: () => ({ dispose: () => undefined }) }) as unknown as Mux;
    const olderCore = (line: string) => line.includes('never said preview.watch');
    // Its {watch: false} handled first (one request may be read before the link is noted), then noted.
    const said = link();
    service.watchFor(said, false);
    service.linked(said);
    // Noted after: its wait ends after the first one's would have.
    const silent = link();
    service.linked(silent);
    const deadline = Date.now() + 10_000;
    while (!logged.some(olderCore)) {
      if (Date.now() > deadline) throw new Error('the silent link was not watched for within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(logged.filter(olderCore)).toHaveLength(1);
    expect(logged.filter((line) => line.includes('port watch started'))).toHaveLength(1);
  });
});
