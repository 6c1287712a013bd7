import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar } from '../support/processes.js';
import { startServingCli } from '../support/serving-cli.js';
import { until } from '../support/until.js';

/**
 * Backpressure end to end, both ways: a browser that stops reading a download must stop the dev
 * server on the host, and a dev server that stops reading an upload (a POST of a big body) must
 * stop the browser, on each path a preview takes: a native lane (lane/PROTOCOL.md: its relay reads no more
 * than its fixed buffers hold) and the link's mux (HANGAR_LANES=off: shared/src/link/splice.ts
 * pauses the reading socket while the stream's window is spent, and each end acks only bytes
 * its socket took).
 *
 * What is held between the two ends is the kernel's socket buffers (a few MiB each on loopback)
 * plus a window or a lane's buffers: far under HELD_BOUND. Broken backpressure holds the whole
 * download or upload (TOTAL) in the agent's or the core's memory (or drops it), which takes them
 * well under a second. Once the reader reads again, every byte arrives, in order.
 *
 * No fixed sleep: the writer counts as stopped once QUIET_ROUND_TRIPS requests in a row have
 * gone through the same preview (the same agent, link and core) while it wrote nothing. A stalled
 * machine makes each round trip slower, never fewer, so the wait cannot pass before the agent
 * and the core had their turns to read on.
 */
const TOTAL = 96 * 1024 * 1024;
const HELD_BOUND = 64 * 1024 * 1024;
const QUIET_ROUND_TRIPS = 20;

describe('previews: a reader that stops reading stops the writer (backpressure end to end)', () => {
  // Lanes opened are debug lines: how the test knows which path its download took. One host for
  // both cases (each counts the lanes opened during it): a host per case cost 4 s each in setup.
  const host = usePairedHost({ shared: true, agent: { logLevel: 'debug' } });
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const lanesOpened = () =>
    host.agent
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; purpose?: string })
      .filter((line) => line.msg === 'lane opened' && line.purpose === 'preview').length;

  /** Adds the dev server's port as a preview and serves it here (hangar preview open): its local port. */
  const servePreview = async (port: number, env: Record<string, string>) => {
    expect((await hangar(host.home, ['preview', 'add', 'box', String(port)])).code).toBe(0);
    const served = await startServingCli(
      host.home,
      ['preview', 'open', 'box', String(port)],
      /at (http:\/\/localhost:\d+\/)/,
      'SIGINT',
      env,
    );
    cleanup.push(() => served.stop());
    return Number(new URL(served.url).port);
  };
  /** One small request through the same preview, on a connection of its own. */
  const roundTripTo = (previewPort: number) => () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: previewPort, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.setTimeout(15_000, () => req.destroy(new Error('a small request: no answer in 15 s')));
      req.on('error', reject);
      req.end();
    });
  /** `server` listening on loopback, closed after the test: its port. */
  const listening = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    return (server.address() as AddressInfo).port;
  };
  /**
   * Waits until the writer (`moved`: how many times it wrote or drained, and the bytes its socket
   * took) has moved in none of QUIET_ROUND_TRIPS round trips in a row, or has written it all
   * (backpressure broken). Then checks the path the transfer took: a lane unless lanes are off
   * (logged long before: the lane opened with the transfer).
   */
  const untilHeld = async (
    roundTrip: () => Promise<void>,
    moved: () => { progress: number; written: number },
    env: Record<string, string>,
    lanesBefore: number,
    what: string,
  ) => {
    let quiet = 0;
    while (quiet < QUIET_ROUND_TRIPS && moved().written < TOTAL) {
      const before = moved();
      await roundTrip();
      const now = moved();
      quiet = now.progress === before.progress && now.written === before.written ? quiet + 1 : 0;
    }
    const lanes = await until(
      () => (env['HANGAR_LANES'] === 'off' || lanesOpened() > lanesBefore ? lanesOpened() - lanesBefore : undefined),
      `the lane of the ${what} in the agent's log`,
      5_000,
    );
    expect(lanes > 0).toBe(env['HANGAR_LANES'] !== 'off');
  };

  it.each([
    ['a native lane', {}],
    ['the link (HANGAR_LANES=off)', { HANGAR_LANES: 'off' }],
  ])('on %s', async (_path, env: Record<string, string>) => {
    const lanesBefore = lanesOpened();
    /** Bytes the dev server's socket took, and how many times it did (its writes and drains). */
    let written = 0;
    let progress = 0;
    const server = createServer((req, res) => {
      if (req.url !== '/big') return void res.end('ok');
      const chunk = Buffer.alloc(64 * 1024, 120);
      const pump = () => {
        progress++;
        while (written < TOTAL) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const port = await listening(server);
    const previewPort = await servePreview(port, env);
    const roundTrip = roundTripTo(previewPort);

    const socket = connect(previewPort, '127.0.0.1');
    cleanup.push(() => socket.destroy());
    socket.write(`GET /big HTTP/1.1\r\nHost: localhost:${previewPort}\r\nConnection: close\r\n\r\n`);
    let received = 0;
    await new Promise<void>((resolve) =>
      socket.once('data', (chunk: Buffer) => {
        received += chunk.length;
        socket.pause();
        resolve();
      }),
    );
    // The reader reads nothing more: the dev server must stop writing.
    await untilHeld(roundTrip, () => ({ progress, written }), env, lanesBefore, 'download');

    const heldAt = written;
    expect(heldAt, `bytes the dev server wrote to a reader that stopped (${received} read)`).toBeLessThan(HELD_BOUND);
    // Reading again, the reader gets the rest, and the dev server writes it all.
    const done = new Promise<void>((resolve) => socket.on('end', () => resolve()));
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.resume();
    await done;
    expect(written).toBe(TOTAL);
    expect(received).toBeGreaterThan(TOTAL);
  });

  it.each([
    ['a native lane', {}],
    ['the link (HANGAR_LANES=off)', { HANGAR_LANES: 'off' }],
  ])(
    'uploading, on %s: a dev server that reads nothing stops the browser, then gets every byte',
    async (_path, env: Record<string, string>) => {
      const lanesBefore = lanesOpened();
      /** The upload the dev server holds without reading, until the test lets it read. */
      let upload: { req: IncomingMessage; res: ServerResponse } | undefined;
      const server = createServer((req, res) => {
        if (req.url !== '/upload') return void res.end('ok');
        req.pause();
        upload = { req, res };
      });
      const port = await listening(server);
      const previewPort = await servePreview(port, env);
      const roundTrip = roundTripTo(previewPort);

      // The browser sends TOTAL bytes (each chunk different: a byte lost, doubled or moved changes
      // the hash) as fast as its socket takes them.
      const socket = connect(previewPort, '127.0.0.1');
      cleanup.push(() => socket.destroy());
      socket.write(
        `POST /upload HTTP/1.1\r\nHost: localhost:${previewPort}\r\nContent-Length: ${TOTAL}\r\nConnection: close\r\n\r\n`,
      );
      const sent = createHash('sha256');
      let written = 0;
      let progress = 0;
      const pump = () => {
        progress++;
        while (written < TOTAL) {
          const chunk = Buffer.alloc(64 * 1024, written / (64 * 1024));
          sent.update(chunk);
          written += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
      await until(() => upload, 'the upload at the dev server', 10_000);
      // The dev server reads nothing: the browser must stop writing.
      await untilHeld(roundTrip, () => ({ progress, written }), env, lanesBefore, 'upload');
      expect(written, 'bytes the browser wrote to a dev server that reads nothing').toBeLessThan(HELD_BOUND);

      // The dev server reads now: it gets every byte, in order, and says so; the browser's rest goes too.
      const { req, res } = upload!;
      const got = createHash('sha256');
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        got.update(chunk);
        received += chunk.length;
      });
      req.on('end', () => res.end(`${received} ${got.digest('hex')}`));
      req.resume();
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      await new Promise<void>((resolve) => socket.on('end', () => resolve()));
      expect(written).toBe(TOTAL);
      expect(answer.split('\r\n\r\n').slice(1).join('')).toBe(`${TOTAL} ${sent.digest('hex')}`);
    },
  );
});
