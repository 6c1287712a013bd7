import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { LANE_PREFACE, RecordReader, RecordType, deriveLaneKeys, sealRecord } from '@hangar/lane';
import { decodeBase64url } from '@hangar/shared';
import { HangarCore } from '../../electron/core/src/core.js';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, hangarAgent, listenInChild } from '../support/processes.js';
import { startServingCli, type ServingCli } from '../support/serving-cli.js';

/**
 * Previews through the CLI against a real agent: a dev server on the host (here: loopback of the
 * same machine, in this process so the test can see what reached it) served on this computer by
 * `hangar preview open`, HTTP and WebSocket alike.
 */

interface DevServer {
  port: number;
  server: Server;
  /** TCP connections the dev server accepted, and requests it answered. */
  connections: number;
  requests: string[];
  close(): Promise<void>;
}

/** What GET /blob answers: 4 MiB of random bytes, with their sha256 in x-sha256. */
const BLOB = randomBytes(4 * 1024 * 1024);

/**
 * A small dev server: GET / says hello, GET /blob answers BLOB, POST /echo answers the body's
 * sha256, /hmr is a WebSocket.
 */
async function startDevServer(host = '127.0.0.1'): Promise<DevServer> {
  const dev = { connections: 0, requests: [] as string[] } as DevServer;
  const server = createServer((req, res) => {
    dev.requests.push(`${req.method} ${req.url} host=${req.headers.host}`);
    if (req.url === '/blob') {
      res.setHeader('x-sha256', createHash('sha256').update(BLOB).digest('hex'));
      res.end(BLOB);
      return;
    }
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => res.end(hash.digest('hex')));
      return;
    }
    res.setHeader('content-type', 'text/html');
    res.end('<h1>hello from the dev server</h1>');
  });
  server.on('connection', () => dev.connections++);
  const wss = new WebSocketServer({ server, path: '/hmr' });
  wss.on('connection', (socket) => {
    socket.send('connected'); // the server speaks first, as Vite's HMR server does
    socket.on('message', (data, binary) => socket.send(binary ? data : `pong:${String(data)}`));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  dev.server = server;
  dev.port = (server.address() as AddressInfo).port;
  dev.close = async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return dev;
}

interface OpenPreview extends ServingCli {
  /** The port it serves on this computer. */
  port: number;
}

/** `hangar preview open box <port>` as a user runs it, stopped with Ctrl-C. */
async function openPreview(
  home: string,
  port: number,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<OpenPreview> {
  const served = await startServingCli(
    home,
    ['preview', 'open', 'box', String(port), ...extra],
    /at (http:\/\/localhost:\d+\/)/,
    'SIGINT',
    env,
  );
  return { ...served, port: Number(new URL(served.url).port) };
}

interface Answer {
  status: number;
  body: string;
}

/** A request as a browser at http://localhost:<port>/ sends it. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return send(port, 'GET', path, { host: `localhost:${port}`, ...headers });
}

function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res: IncomingMessage) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: no answer in 15 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket; first: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    const timer = setTimeout(() => reject(new Error(`WebSocket ${url}: not open in 10 s`)), 10_000);
    socket.once('message', (data) => {
      clearTimeout(timer);
      resolve({ socket, first: String(data) });
    });
    socket.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`WebSocket refused with ${res.statusCode}`));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function nextMessage(socket: WebSocket): Promise<Buffer | string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no WebSocket message in 10 s')), 10_000);
    socket.once('message', (data, binary) => {
      clearTimeout(timer);
      resolve(binary ? (data as Buffer) : String(data));
    });
  });
}

// One host for these: each test removes the previews it added (and ends its dev servers, previews
// and cores) after it, and checks only ports, links and processes of its own; the agent restart
// goes last. A fresh host for each took a loaded CI machine seconds a test.
describe('previews through the CLI', () => {
  const host = usePairedHost({ shared: true });
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
    // What the test added is gone: the next one starts from a host with no preview.
    const listed = await hangar(host.home, ['preview', 'ls', 'box', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { previews: unknown[] }[])[0]!.previews).toEqual([]);
  });

  const devServer = async (address?: string) => {
    const dev = await startDevServer(address);
    cleanup.push(() => dev.close());
    return dev;
  };
  const open = async (port: number, extra?: string[]) => {
    const preview = await openPreview(host.home, port, extra);
    cleanup.push(() => preview.stop());
    return preview;
  };
  /** `hangar preview add`, removed again after the test (unless the test removed it itself). */
  const add = async (port: number, ...extra: string[]) => {
    const added = await hangar(host.home, ['preview', 'add', 'box', String(port), ...extra]);
    cleanup.push(() => hangar(host.home, ['preview', 'rm', 'box', String(port)]));
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    return added;
  };

  it('a dev server on the host answers at the local address, HTTP and WebSocket alike', async () => {
    const dev = await devServer();
    const added = await add(dev.port, '--label', 'web');
    expect(added.stdout).toContain(`added preview of port ${dev.port} on box (listening)`);
    const preview = await open(dev.port);

    const page = await get(preview.port, '/');
    expect(page).toEqual({ status: 200, body: '<h1>hello from the dev server</h1>' });
    // The dev server sees the name the browser used, so its own Host checks (Vite's allowedHosts) pass.
    expect(dev.requests.at(-1)).toBe(`GET / host=localhost:${preview.port}`);

    const upload = randomBytes(3 * 1024 * 1024);
    const echoed = await send(preview.port, 'POST', '/echo', { host: `localhost:${preview.port}` }, upload);
    expect(echoed.body).toBe(createHash('sha256').update(upload).digest('hex'));

    const { socket, first } = await openSocket(`ws://localhost:${preview.port}/hmr`);
    cleanup.push(() => socket.terminate());
    expect(first).toBe('connected');
    socket.send('hi');
    expect(await nextMessage(socket)).toBe('pong:hi');
    const blob = randomBytes(1024 * 1024);
    socket.send(blob);
    expect(Buffer.compare((await nextMessage(socket)) as Buffer, blob)).toBe(0);

    const listed = await hangar(host.home, ['preview', 'ls', 'box', '--json']);
    const [box] = JSON.parse(listed.stdout) as { previews: { port: number; label: string; listening: boolean }[] }[];
    expect(box!.previews).toEqual([expect.objectContaining({ port: dev.port, label: 'web', listening: true })]);
  });

  it('a request naming another host is refused before anything reaches the host (DNS rebinding)', async () => {
    const dev = await devServer();
    await add(dev.port);
    const preview = await open(dev.port);
    const before = dev.connections;

    const rebound = await get(preview.port, '/', { host: `evil.example:${preview.port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toContain('is not this computer');
    await expect(
      openSocket(`ws://127.0.0.1:${preview.port}/hmr`, { host: `evil.example:${preview.port}` }),
    ).rejects.toThrow(/refused with 403/);
    const otherPort = await get(preview.port, '/', { host: `localhost:${preview.port + 1}` });
    expect(otherPort.status).toBe(403);
    expect(dev.connections).toBe(before);

    // This computer under its other names is fine.
    for (const name of [`127.0.0.1:${preview.port}`, `[::1]:${preview.port}`, `app.localhost:${preview.port}`]) {
      expect((await get(preview.port, '/', { host: name })).status).toBe(200);
    }
  });

  it('only registered ports are served: the agent never dials another one', async () => {
    const dev = await devServer();
    const refused = await hangar(host.home, ['preview', 'open', 'box', String(dev.port)]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(
      `port ${dev.port} is not a preview on box; add it first with: hangar preview add box ${dev.port}`,
    );

    // A device that skips the CLI and asks the agent directly is refused the same way.
    const core = await HangarCore.open({ home: host.home });
    cleanup.push(() => core.dispose());
    const connection = core.connection('box');
    const mux = await connection.link();
    const stream = mux.openStream();
    await expect(connection.call('preview.connect', { port: dev.port, stream_id: stream.id })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
    await expect(connection.call('preview.connect', { port: 0, stream_id: stream.id })).rejects.toMatchObject({
      code: 'E_BAD_REQUEST',
    });
    await expect(connection.call('preview.add', { port: host.agent.port })).rejects.toThrow(/agent's own link/);
    expect(dev.connections).toBe(0);
  });

  it('one link holds at most 256 preview connections, and a closed one makes room', async () => {
    const dev = await devServer();
    await add(dev.port);
    const core = await HangarCore.open({ home: host.home });
    cleanup.push(() => core.dispose());
    const connection = core.connection('box');
    const mux = await connection.link();
    const connectOne = async () => {
      const stream = mux.openStream();
      try {
        await connection.call('preview.connect', { port: dev.port, stream_id: stream.id });
        return stream;
      } catch (error) {
        stream.close();
        throw error;
      }
    };
    const held = [];
    // In rounds: a link may have 64 requests in flight.
    for (let round = 0; round < 10; round++) held.push(...(await Promise.all(Array.from({ length: 25 }, connectOne))));
    // The last 20 asked at once: connections still dialing count against the limit too.
    const last = await Promise.allSettled(Array.from({ length: 20 }, connectOne));
    held.push(...last.filter((o) => o.status === 'fulfilled').map((o) => o.value));
    expect(held).toHaveLength(256);
    const refused = last.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused).toHaveLength(14);
    expect(String(refused[0]!.reason)).toContain('this link already has 256 preview connections open');
    await expect(connectOne()).rejects.toThrow(/256 preview connections/);
    held[0]!.close({ code: 'eof', message: 'done' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(connectOne()).resolves.toBeDefined();
  });

  it('removing a preview cuts its open connections, and the next request gets a page saying so', async () => {
    const dev = await devServer();
    await add(dev.port);
    const preview = await open(dev.port);
    const { socket } = await openSocket(`ws://localhost:${preview.port}/hmr`);
    cleanup.push(() => socket.terminate());
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));

    const removed = await hangar(host.home, ['preview', 'rm', 'box', String(dev.port)]);
    expect(removed.code).toBe(0);
    const deadline = Date.now() + 5000;
    await expect(
      Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 5000))]),
    ).resolves.toBeTypeOf('number');
    expect(Date.now()).toBeLessThan(deadline);

    const after = await get(preview.port, '/');
    expect(after.status).toBe(404);
    expect(after.body).toContain(`port ${dev.port} on box is not a preview any more`);
    const again = await hangar(host.home, ['preview', 'rm', 'box', String(dev.port)]);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain(`port ${dev.port} is not a preview on box (see: hangar preview ls box)`);
  });

  it('a dev server that is not running gets a 502 page that says to start it', async () => {
    const dev = await devServer();
    const port = dev.port;
    await dev.close();
    const added = await add(port);
    expect(added.stdout).toContain('nothing listens there yet');
    const preview = await open(port);
    const answer = await get(preview.port, '/');
    expect(answer.status).toBe(502);
    expect(answer.body).toMatch(
      new RegExp(`nothing answers on port ${port} on this host's loopback.*start the dev server`),
    );
  });

  it('a preview of this computer on its own port says it loops instead of dialing itself forever', async () => {
    const dev = await devServer();
    const port = dev.port;
    await dev.close();
    await add(port);
    // By default a host on this computer never gets its own port here; asked for it, the host's dial reaches us.
    const preview = await open(port, ['--local-port', String(port)]);
    expect(preview.port).toBe(port);
    const answer = await get(port, '/');
    expect(answer.status).toBe(508);
    expect(answer.body).toContain(`port ${port} on box leads back to this preview`);
    expect((await get(port, '/')).status).toBe(508);
  });

  it('a host on this computer never gets its own port here by default, so its dev server can still start', async () => {
    const dev = await devServer();
    const port = dev.port;
    await dev.close();
    await add(port);
    const preview = await open(port);
    expect(preview.port).not.toBe(port);
    const restarted = createServer((_req, res) => res.end('late start'));
    await new Promise<void>((resolve, reject) => {
      restarted.once('error', reject);
      restarted.listen(port, '127.0.0.1', resolve);
    });
    cleanup.push(() => new Promise((resolve) => restarted.close(resolve)));
    expect(await get(preview.port, '/')).toEqual({ status: 200, body: 'late start' });
  });

  it('a dev server listening on ::1 alone is reached too', async () => {
    const dev = await devServer('::1');
    await add(dev.port);
    const preview = await open(dev.port);
    expect(await get(preview.port, '/')).toEqual({ status: 200, body: '<h1>hello from the dev server</h1>' });
  });

  it('lists what listens on the host as candidates, with the process, until it is a preview', async () => {
    const { child, port } = await listenInChild();
    cleanup.push(() => child.kill());
    const listed = await hangar(host.home, ['preview', 'ls', 'box', '--json']);
    const [box] = JSON.parse(listed.stdout) as {
      previews: { port: number }[];
      listening: { port: number; pid: number | null; process: string | null }[];
    }[];
    expect(box!.listening).toContainEqual({
      port,
      address: '127.0.0.1',
      pid: child.pid,
      process: expect.stringMatching(/^node/),
    });
    expect(box!.listening.map((l) => l.port)).not.toContain(host.agent.port);

    await add(port);
    const human = await hangar(host.home, ['preview', 'ls', 'box']);
    expect(human.stdout).toMatch(new RegExp(`box\\s+${port}\\s+yes`));
    const again = JSON.parse((await hangar(host.home, ['preview', 'ls', 'box', '--json'])).stdout) as (typeof box)[];
    expect(again[0]!.listening.map((l) => l.port)).not.toContain(port);
  });

  it('a dev server that starts or stops on the host is told to connected clients within seconds', async () => {
    const core = await HangarCore.open({ home: host.home });
    cleanup.push(() => core.dispose());
    const connection = core.connection('box');
    await connection.link();
    const events: { listening: { port: number; process: string | null }[] }[] = [];
    connection.on('previews.changed', (data) => events.push(data));
    const waitFor = async (what: string, test: (ports: number[]) => boolean) => {
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        if (events.some((e) => test(e.listening.map((l) => l.port)))) return Date.now();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`no previews.changed ${what} within 8 s`);
    };
    await connection.call('preview.list', {}); // what this client has seen: the dev server starts after it
    const startedAt = Date.now();
    const { child, port } = await listenInChild();
    cleanup.push(() => child.kill());
    const seenAt = await waitFor(`with port ${port}`, (ports) => ports.includes(port));
    expect(seenAt - startedAt).toBeLessThan(5000);
    const found = events.find((e) => e.listening.some((l) => l.port === port))!;
    expect(found.listening.find((l) => l.port === port)!.process).toMatch(/^node/);
    events.length = 0;
    child.kill();
    await waitFor(`without port ${port}`, (ports) => !ports.includes(port));
  });

  it('an open preview serves again after the agent restarts, and the agent still has it', async () => {
    const dev = await devServer();
    await add(dev.port);
    const preview = await open(dev.port);
    expect((await get(preview.port, '/')).status).toBe(200);
    await host.restartAgent();
    expect(await get(preview.port, '/')).toEqual({ status: 200, body: '<h1>hello from the dev server</h1>' });
  });
});

// One host for these: each command is refused before it adds anything, and each case checks that
// the host still has no preview (one that had added one would fail there itself).
describe('previews refused as bad input', () => {
  const host = usePairedHost({ shared: true });

  it.each([
    [['preview', 'add', 'box', '0'], 'hangar: port: a port is 1-65535'],
    [['preview', 'add', 'box', '70000'], 'hangar: port: a port is 1-65535'],
    [['preview', 'add', 'box', '80abc'], 'port "80abc": expected a port number from 1 to 65535'],
    [
      ['preview', 'add', 'box', '8080', '--label', 'bad\u0007label'],
      // Checked by the door (previews.add's schema), which names the call and the field.
      'hangar: previews.add: label: a label has no control characters',
    ],
    [['preview', 'open', 'box', '8080', '--local-port', 'x'], '--local-port "x": expected a port number'],
  ])('hangar %j is refused as bad input (status 2)', async (args, message) => {
    const result = await hangar(host.home, args);
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(2);
    const listed = JSON.parse((await hangar(host.home, ['preview', 'ls', 'box', '--json'])).stdout) as {
      previews: unknown[];
    }[];
    expect(listed[0]!.previews).toEqual([]);
  });
});

/**
 * Previews on lanes (lane/PROTOCOL.md): each browser connection on a TCP connection of its own to
 * the agent's link port, relayed by native code at both ends. The agent logs each lane it opens
 * (debug): that is how these tests know a connection took a lane and not the link's mux.
 */
function usePreviewLanes(shared: boolean) {
  // Lanes opened and refused are debug lines (one per browser connection).
  const host = usePairedHost({ shared, agent: { logLevel: 'debug' } });
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  /** Where this test's part of the agent's log begins (a shared host's log holds the tests before). */
  let logFrom = 0;
  beforeEach(() => {
    logFrom = host.agent.stderr().length;
  });
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const devServer = async () => {
    const dev = await startDevServer();
    cleanup.push(() => dev.close());
    const added = await hangar(host.home, ['preview', 'add', 'box', String(dev.port)]);
    // Removed after the test (refused if the test removed it): a later dev server may get its port.
    cleanup.push(() => hangar(host.home, ['preview', 'rm', 'box', String(dev.port)]));
    expect(added.code).toBe(0);
    return dev;
  };
  const open = async (port: number, env: Record<string, string> = {}) => {
    const preview = await openPreview(host.home, port, [], env);
    cleanup.push(() => preview.stop());
    return preview;
  };
  /** What the agent logged since this test began. */
  const agentLog = () =>
    host.agent
      .stderr()
      .slice(logFrom)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; purpose?: string; lanes?: number; code?: string });
  const lanesOpened = () =>
    agentLog().filter((line) => line.msg === 'lane opened' && line.purpose === 'preview').length;
  /** The agent's log comes through a pipe: a line may come a little after the bytes it tells of. */
  const logged = async (what: string, seen: () => boolean) => {
    for (let tries = 0; tries < 100 && !seen(); tries++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen(), `the agent's log: ${what}`).toBe(true);
  };

  /**
   * A grant from a core of this home (its link), and lanes crafted with it: `lane(laneNo, hello)`
   * sends preface, ids and HELLO on a new connection to the agent's port, and resolves with the
   * bytes sent (to say them again) and the agent's record 0, or undefined when it closed without one.
   */
  const granted = async () => {
    const core = await HangarCore.open({ home: host.home });
    cleanup.push(() => core.dispose());
    const grant = await core.connection('box').call('lane.grant', {});
    const grantId = Buffer.from(decodeBase64url(grant.grant_id)!);
    const secret = decodeBase64url(grant.secret)!;
    const send = (bytes: Buffer, keys: { receive: Buffer }) =>
      new Promise<{ type: RecordType; payload: Buffer } | undefined>((resolve) => {
        const socket = connect(host.agent.port, '127.0.0.1');
        cleanup.push(() => socket.destroy());
        const reader = new RecordReader(keys.receive, 0n);
        socket.on('data', (chunk: Buffer) => {
          reader.push(chunk);
          const record = reader.next();
          if (record !== undefined) resolve(record);
        });
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(undefined));
        socket.write(bytes);
      });
    const lane = async (laneNo: bigint, hello: unknown) => {
      const keys = deriveLaneKeys(secret, grantId, laneNo, 'client');
      const number = Buffer.alloc(8);
      number.writeBigUInt64BE(laneNo);
      const payload = Buffer.from(JSON.stringify(hello));
      const bytes = Buffer.concat([
        LANE_PREFACE,
        grantId,
        number,
        sealRecord(keys.send, 0n, RecordType.Hello, payload),
      ]);
      return { bytes, keys, record: await send(bytes, keys), again: () => send(bytes, keys) };
    };
    return lane;
  };
  const json = (record: { payload: Buffer } | undefined) => JSON.parse(record!.payload.toString()) as unknown;

  return { host, cleanup, devServer, open, agentLog, lanesOpened, logged, granted, json };
}

// One host for these: each asserts on the lanes it opened (the agent's log since it began) and on
// ports of its own, and removes the previews it added.
describe('previews over lanes', () => {
  const { host, cleanup, devServer, open, agentLog, lanesOpened, logged, granted, json } = usePreviewLanes(true);
  it('HTTP, a WebSocket (HMR), 4 MiB each way and a half-closed request all travel on lanes', async () => {
    const dev = await devServer();
    const preview = await open(dev.port);

    expect(await get(preview.port, '/')).toEqual({ status: 200, body: '<h1>hello from the dev server</h1>' });
    await logged('1 lane opened', () => lanesOpened() === 1);

    const upload = randomBytes(4 * 1024 * 1024);
    const echoed = await send(preview.port, 'POST', '/echo', { host: `localhost:${preview.port}` }, upload);
    expect(echoed.body).toBe(createHash('sha256').update(upload).digest('hex'));
    const download = await new Promise<{ sha: string; expected: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: preview.port,
          path: '/blob',
          headers: { host: `localhost:${preview.port}` },
          agent: false,
        },
        (res) => {
          const hash = createHash('sha256');
          res.on('data', (chunk: Buffer) => hash.update(chunk));
          res.on('end', () => resolve({ sha: hash.digest('hex'), expected: String(res.headers['x-sha256']) }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(download.sha).toBe(download.expected);

    const { socket, first } = await openSocket(`ws://localhost:${preview.port}/hmr`);
    cleanup.push(() => socket.terminate());
    expect(first).toBe('connected');
    socket.send('hi');
    expect(await nextMessage(socket)).toBe('pong:hi');

    // A client that ends its side once the request is out still gets the whole answer.
    const raw = connect(preview.port, '127.0.0.1');
    cleanup.push(() => raw.destroy());
    const answer = new Promise<string>((resolve) => {
      let text = '';
      raw.on('data', (chunk: Buffer) => (text += chunk.toString()));
      raw.on('end', () => resolve(text));
    });
    raw.end(`GET / HTTP/1.1\r\nHost: localhost:${preview.port}\r\nConnection: close\r\n\r\n`);
    expect(await answer).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*<h1>hello from the dev server<\/h1>$/);
    await logged('5 lanes opened', () => lanesOpened() === 5);
  });

  it('a port that is no longer a preview is refused on the lane, and the browser gets the same 404 page', async () => {
    const dev = await devServer();
    const preview = await open(dev.port);
    expect((await get(preview.port, '/')).status).toBe(200);
    expect((await hangar(host.home, ['preview', 'rm', 'box', String(dev.port)])).code).toBe(0);
    const gone = await get(preview.port, '/');
    expect(gone.status).toBe(404);
    expect(gone.body).toContain(`port ${dev.port} on box is not a preview any more`);
    await logged('a lane refused', () =>
      agentLog().some((line) => line.msg === 'lane refused' && line.code === 'E_NOT_FOUND'),
    );
  });

  it('HANGAR_LANES=off keeps previews on the link', async () => {
    const dev = await devServer();
    const preview = await open(dev.port, { HANGAR_LANES: 'off' });
    expect(await get(preview.port, '/')).toEqual({ status: 200, body: '<h1>hello from the dev server</h1>' });
    const { socket } = await openSocket(`ws://localhost:${preview.port}/hmr`);
    cleanup.push(() => socket.terminate());
    // Then one request on a lane (another preview, without the variable): once its line is in the
    // log, any line of the connections before it is too.
    const other = await devServer();
    const onLanes = await open(other.port);
    expect((await get(onLanes.port, '/')).status).toBe(200);
    await logged('1 lane opened', () => lanesOpened() >= 1);
    expect(lanesOpened()).toBe(1);
  });

  it('a lane said again (its grant and number, bytes as captured) is dropped with no answer', async () => {
    const dev = await devServer();
    const lane = await granted();
    const first = await lane(0n, { purpose: 'preview', port: dev.port });
    expect(first.record?.type).toBe(RecordType.Accept);
    expect(json(first.record)).toMatchObject({ source_port: expect.any(Number) });
    expect(await first.again()).toBeUndefined();
  });

  it('a HELLO that is not one gets REFUSE naming the field; one for an unregistered port gets E_NOT_FOUND', async () => {
    const dev = await devServer();
    const lane = await granted();
    const badPort = await lane(0n, { purpose: 'preview', port: 0 });
    expect(badPort.record?.type).toBe(RecordType.Refuse);
    expect(json(badPort.record)).toEqual({ code: 'E_BAD_REQUEST', message: 'lane HELLO: port: a port is 1-65535' });
    const badPurpose = await lane(1n, { purpose: 'tunnel', port: dev.port });
    expect(badPurpose.record?.type).toBe(RecordType.Refuse);
    expect(json(badPurpose.record)).toMatchObject({
      code: 'E_BAD_REQUEST',
      message: expect.stringContaining('purpose'),
    });
    const notPreview = await lane(2n, { purpose: 'preview', port: dev.port + 1 });
    expect(json(notPreview.record)).toMatchObject({ code: 'E_NOT_FOUND' });
    expect(dev.connections).toBe(0);
  });
});

// A fresh host for each: the device is unpaired there.
describe('previews over lanes, from a device then unpaired', () => {
  const { host, cleanup, devServer, open, agentLog, lanesOpened, logged } = usePreviewLanes(false);
  it("the end of a link ends its lanes: an unpaired device's open preview connections close", async () => {
    const dev = await devServer();
    const preview = await open(dev.port);
    const { socket } = await openSocket(`ws://localhost:${preview.port}/hmr`);
    cleanup.push(() => socket.terminate());
    await logged('1 lane opened', () => lanesOpened() === 1);
    const core = await HangarCore.open({ home: host.home });
    const device = core.deviceName;
    await core.dispose();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const unpaired = await hangarAgent(['unpair', device, '--data', host.dataDir]);
    expect(unpaired.code).toBe(0);
    await closed;
    await logged('the lanes of the closed link closed', () =>
      agentLog().some((line) => line.msg === 'closing the lanes of a closed link' && line.lanes === 1),
    );
  });

  it("an unpaired device's lane closes at once, even one whose download it stopped reading, and nothing it sends after reaches the port", async () => {
    // A port that sends without end (a download) and keeps every byte it is sent.
    const received: Buffer[] = [];
    let pressed!: () => void;
    const backpressure = new Promise<void>((resolve) => (pressed = resolve));
    let ended!: () => void;
    const dropped = new Promise<void>((resolve) => (ended = resolve));
    const firehose = createNetServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => ended());
      const block = Buffer.alloc(64 * 1024, 7);
      const pour = () => {
        while (!socket.destroyed && socket.write(block));
        if (!socket.destroyed) pressed();
      };
      socket.on('drain', pour);
      pour();
    });
    await new Promise<void>((resolve) => firehose.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => firehose.close(() => resolve())));
    const port = (firehose.address() as AddressInfo).port;
    expect((await hangar(host.home, ['preview', 'add', 'box', String(port)])).code).toBe(0);

    const core = await HangarCore.open({ home: host.home });
    cleanup.push(() => core.dispose());
    const grant = await core.connection('box').call('lane.grant', {});
    const grantId = Buffer.from(decodeBase64url(grant.grant_id)!);
    const keys = deriveLaneKeys(decodeBase64url(grant.secret)!, grantId, 0n, 'client');
    const socket = connect(host.agent.port, '127.0.0.1');
    cleanup.push(() => socket.destroy());
    socket.on('error', () => undefined);
    const reader = new RecordReader(keys.receive, 0n);
    const accepted = new Promise<RecordType | undefined>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        const record = reader.next();
        if (record === undefined) return;
        socket.pause(); // the client reads nothing more: the agent's buffers fill
        resolve(record.type);
      });
      socket.on('close', () => resolve(undefined));
    });
    const hello = Buffer.from(JSON.stringify({ purpose: 'preview', port }));
    socket.write(
      Buffer.concat([LANE_PREFACE, grantId, Buffer.alloc(8), sealRecord(keys.send, 0n, RecordType.Hello, hello)]),
    );
    expect(await accepted).toBe(RecordType.Accept);
    socket.write(sealRecord(keys.send, 1n, RecordType.Data, Buffer.from('before')));
    await backpressure;

    expect((await hangarAgent(['unpair', core.deviceName, '--data', host.dataDir])).code).toBe(0);
    await logged('the lanes of the closed link closed', () =>
      agentLog().some((line) => line.msg === 'closing the lanes of a closed link' && line.lanes === 1),
    );
    socket.write(sealRecord(keys.send, 2n, RecordType.Data, Buffer.from('after')));
    await dropped;
    const got = Buffer.concat(received).toString();
    expect(got).toContain('before');
    expect(got).not.toContain('after');
  });
});
