import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, hangarFrom, ROOT } from '../support/processes.js';
import { startServingCli } from '../support/serving-cli.js';

/**
 * Hangar uses three Node internals where they exist, each behind a feature test with a portable
 * fallback: spliced preview sockets written through their handle (shared/src/link/
 * handle-writes.ts), accepted browser sockets reading into pooled buffers (electron/core/src/
 * previews/accepted-reads.ts), log blocks inflated into pooled buffers (electron/core/src/jobs/
 * log-blocks.ts). Electron's Node, or a later Node, may lack them. Here the agent and the
 * `hangar` commands run with test/support/without-node-internals.cjs preloaded, which takes all
 * three away (and counts that it did), and previews and job logs must still be right, byte for
 * byte.
 */

const PRELOAD = join(ROOT, 'test', 'support', 'without-node-internals.cjs');

interface Counts {
  pid: number;
  argv: string[];
  streamWrap: number;
  inflate: number;
  accepted: number;
}

/** A deterministic body of `size` bytes (a download checked by its hash). */
function bytes(size: number): Buffer {
  const block = createHash('sha512').update('hangar').digest();
  const body = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; at += block.length) block.copy(body, at);
  return body;
}

function fetchBody(port: number, method: string, path: string, body?: Buffer, pauseMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { host: `localhost:${port}` }, agent: false },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        if (pauseMs > 0) {
          // A browser that stops reading a while: the preview's writes wait, nothing is lost.
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        }
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(Buffer.concat(chunks))
            : reject(new Error(`${method} ${path}: ${res.statusCode}`)),
        );
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe('without the Node internals Hangar uses where present', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-internals-'));
  const log = join(dir, 'counts.jsonl');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = { NODE_OPTIONS: `--require ${PRELOAD}`, HANGAR_TEST_INTERNALS_LOG: log };
  const host = usePairedHost({ agent: { env }, workspace: { 'hello.txt': 'hi\n' } });
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  const counts = (): Counts[] => {
    try {
      return readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Counts);
    } catch {
      return [];
    }
  };

  it('a preview carries HTTP downloads, uploads and WebSocket messages byte for byte', async () => {
    const download = bytes(24 * 1024 * 1024);
    const server = createServer((req, res) => {
      if (req.method === 'POST') {
        const hash = createHash('sha256');
        req.on('data', (chunk: Buffer) => hash.update(chunk));
        req.on('end', () => res.end(hash.digest('hex')));
        return;
      }
      res.end(download);
    });
    const wss = new WebSocketServer({ server, path: '/hmr' });
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(data)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    const devPort = (server.address() as AddressInfo).port;
    expect((await hangar(host.home, ['preview', 'add', 'box', String(devPort)])).code).toBe(0);
    const preview = await startServingCli(
      host.home,
      ['preview', 'open', 'box', String(devPort)],
      /at (http:\/\/localhost:\d+\/)/,
      'SIGINT',
      // The link's streams, whose splice uses those internals: a lane is relayed by native code
      // that uses none of them (lanes are tested in previews.test.ts).
      { ...env, HANGAR_LANES: 'off' },
    );
    cleanup.push(() => preview.stop());
    const port = Number(new URL(preview.url).port);

    const [plain, paused] = await Promise.all([
      fetchBody(port, 'GET', '/big'),
      fetchBody(port, 'GET', '/big', undefined, 1_000),
    ]);
    expect(plain.equals(download)).toBe(true);
    expect(paused.equals(download)).toBe(true);
    const upload = randomBytes(8 * 1024 * 1024);
    const echoed = await fetchBody(port, 'POST', '/echo', upload);
    expect(echoed.toString()).toBe(createHash('sha256').update(upload).digest('hex'));

    const socket = new WebSocket(`ws://localhost:${port}/hmr`);
    cleanup.push(() => socket.terminate());
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const messages = [randomBytes(100), randomBytes(2 * 1024 * 1024), randomBytes(5)];
    const received: Buffer[] = [];
    const all = new Promise<void>((resolve) =>
      socket.on('message', (data: Buffer) => received.push(data) === messages.length && resolve()),
    );
    for (const message of messages) socket.send(message);
    await all;
    expect(received.map((data) => data.toString('hex'))).toEqual(messages.map((data) => data.toString('hex')));

    await preview.stop();
    await host.agent.stop();
    // The fallbacks were what ran: each internal was asked for and refused, in the agent (the
    // dev server's sockets) and in the command (the browser's sockets).
    const seen = counts();
    // (The agent's worker threads share its pid and write their own line.)
    const agent = seen.find((entry) => entry.pid === host.agent.child.pid && entry.argv[0] === 'serve');
    const command = seen.find((entry) => entry.pid === preview.child.pid);
    expect(agent?.streamWrap).toBeGreaterThan(0);
    expect(command?.streamWrap).toBeGreaterThan(0);
    expect(command?.accepted).toBeGreaterThan(0);
  }, 120_000);

  it("a job's compressed log reaches hangar run and hangar logs whole and in order", async () => {
    const lines = 400_000;
    const expected = Array.from({ length: lines }, (_, i) => `${i + 1}\n`).join('');
    const run = await hangarFrom(host.home, ['run', '--host', 'box', '--executor', 'shell', '-c', `seq 1 ${lines}`], {
      cwd: host.workspace,
      env,
      timeoutMs: 90_000,
    });
    expect(run.code).toBe(0);
    expect(run.stdout === expected).toBe(true);
    const id = /job (j-[a-z0-9]+)/.exec(run.stderr)?.[1];
    expect(id).toBeDefined();
    // On the link's stream: a lane (lane/PROTOCOL.md, "Purposes: log") carries the log raw, past
    // the inflating this test is about.
    const logs = await hangarFrom(host.home, ['logs', id!], {
      cwd: host.workspace,
      env: { ...env, HANGAR_LANES: 'off' },
      timeoutMs: 60_000,
    });
    expect(logs.code).toBe(0);
    expect(logs.stdout === expected).toBe(true);
    const inflated = counts().filter((entry) => entry.argv.includes('run') || entry.argv.includes('logs'));
    expect(inflated.length).toBe(2);
    // The log came in deflated blocks, inflated without the pooled path.
    for (const entry of inflated) expect(entry.inflate).toBeGreaterThan(0);
  }, 120_000);
});
