import { createHook } from 'node:async_hooks';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { listenInChild } from '../../../test/support/processes.js';
import { listeningFingerprint, listeningPorts, parseProcNetTcp } from '../../src/previews/listening-ports.js';

describe('what listens on the host', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill();
  });
  const start = async (address: string) => {
    const listener = await listenInChild(address);
    children.push(listener.child);
    return listener;
  };

  it.each([
    ['/proc (Linux)', {}],
    ['lsof (macOS, and Linux without /proc)', { procRoot: '/nonexistent-proc' }],
  ])('finds servers on 127.0.0.1, ::1 and wildcards with their process, through %s', async (_name, options) => {
    const v4 = await start('127.0.0.1');
    const v6 = await start('::1');
    const any = await start('0.0.0.0');
    const found = await listeningPorts(options);
    for (const [listener, address] of [
      [v4, '127.0.0.1'],
      [v6, '::1'],
      [any, '0.0.0.0'],
    ] as const) {
      expect(found).toContainEqual({
        port: listener.port,
        address,
        pid: listener.child.pid,
        process: expect.stringMatching(/^node/),
      });
    }
    expect(found.map((l) => l.port)).toEqual([...found.map((l) => l.port)].sort((a, b) => a - b));
  });

  it.runIf(process.platform === 'linux')(
    'names the process that holds a socket now, not the one a listing found before (it exited, its child kept the socket)',
    async () => {
      // The parent listens, hands the socket to a child as its fd 3, and exits when told to.
      const parent = spawn(process.execPath, [
        '-e',
        `const { spawn } = require('child_process');
         const server = require('net').createServer().listen(0, '127.0.0.1', () => {
           const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'ignore', 'ignore', server._handle.fd] });
           console.log(server.address().port + ' ' + child.pid);
         });
         process.stdin.on('data', () => process.exit(0));`,
      ]);
      children.push(parent);
      const [line] = (await once(createInterface({ input: parent.stdout! }), 'line')) as [string];
      const [port, childPid] = line.split(' ').map(Number) as [number, number];
      children.push({ kill: () => process.kill(childPid) } as unknown as ChildProcess);
      expect((await listeningPorts()).find((l) => l.port === port)?.pid).toBe(parent.pid);
      const exited = once(parent, 'exit');
      parent.stdin!.write('go\n');
      await exited;
      expect((await listeningPorts()).find((l) => l.port === port)).toEqual({
        port,
        address: '127.0.0.1',
        pid: childPid,
        process: expect.stringMatching(/^node/),
      });
    },
  );

  it.runIf(process.platform === 'linux')(
    "the watch's look opens and closes nothing: /proc's tables stay open and each look reads them afresh",
    async () => {
      // Every thread-pool operation is an async resource: count the ones a look starts, by kind.
      const poolOps = async (look: () => Promise<unknown>) => {
        const kinds: string[] = [];
        const hook = createHook({
          init: (_id, type) => {
            if (type.startsWith('FSREQ') || type.startsWith('FILEHANDLE')) kinds.push(type);
          },
        });
        hook.enable();
        try {
          await look();
        } finally {
          hook.disable();
        }
        return {
          opened: kinds.filter((kind) => kind === 'FILEHANDLE').length,
          closed: kinds.filter((kind) => kind === 'FILEHANDLECLOSEREQ').length,
          all: kinds.length,
        };
      };
      await listeningFingerprint(); // the first look opens them
      const ops = await poolOps(() => listeningFingerprint());
      expect(ops).toMatchObject({ opened: 0, closed: 0 });
      expect(ops.all).toBeGreaterThanOrEqual(2); // a read of each table, at least: the count sees them
      // Read again from the start, the open tables show a server that started since.
      const dev = await start('127.0.0.1');
      expect(await listeningFingerprint()).toContain(`127.0.0.1:${dev.port}:`);
      expect((await listeningPorts()).map((l) => l.port)).toContain(dev.port);
    },
  );

  it('finds every listener of a table longer than one read, with the connections after them left unread', async () => {
    // /proc prints listeners first, then the rest; here 80 listeners (~12 KB) and 2,000 connections.
    const root = mkdtempSync(join(tmpdir(), 'hangar-fake-proc-'));
    try {
      mkdirSync(join(root, 'net'));
      const row = (i: number, port: number, state: string) =>
        `${String(i).padStart(4)}: 0100007F:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 ${state} 00000000:00000000 00:00000000 00000000  1000        0 ${1000 + i} 1 0000000000000000 100 0 0 10 0\n`;
      let text = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
      for (let i = 0; i < 80; i++) text += row(i, 20000 + i, '0A');
      for (let i = 80; i < 2080; i++) text += row(i, 40000 + (i % 20000), i % 2 ? '01' : '06');
      writeFileSync(join(root, 'net', 'tcp'), text);
      const found = await listeningPorts({ procRoot: root });
      expect(found.map((l) => l.port)).toEqual(Array.from({ length: 80 }, (_, i) => 20000 + i));
      expect(found.every((l) => l.address === '127.0.0.1' && l.pid === null)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it.runIf(process.platform === 'linux')(
    'finds a server that starts while a thousand connections are open',
    async () => {
      const busy = spawn(process.execPath, [
        '-e',
        `const net = require('net');
       const server = net.createServer().listen(0, '127.0.0.1', () => {
         let open = 0;
         for (let i = 0; i < 500; i++) net.connect(server.address().port, '127.0.0.1', () => ++open === 500 && console.log('connected'));
       });`,
      ]);
      children.push(busy);
      await once(createInterface({ input: busy.stdout! }), 'line');
      const dev = await start('127.0.0.1');
      expect(await listeningPorts()).toContainEqual({
        port: dev.port,
        address: '127.0.0.1',
        pid: dev.child.pid,
        process: expect.stringMatching(/^node/),
      });
    },
  );

  it.runIf(process.platform === 'linux')(
    'finds every listener when they fill more than a page of /proc/net/tcp and tcp6 (the kernel gives a page per read)',
    async () => {
      // 60 listeners are ~9 KB of tcp (150 bytes a line), 40 ~6 KB of tcp6: three and two reads.
      const many = spawn(process.execPath, [
        '-e',
        `const net = require('net');
         const listen = (host) => new Promise((r) => { const s = net.createServer().listen(0, host, () => r(s.address().port)); });
         (async () => {
           const ports = [];
           for (let i = 0; i < 60; i++) ports.push(await listen('127.0.0.1'));
           for (let i = 0; i < 40; i++) ports.push(await listen('::1'));
           console.log(JSON.stringify(ports));
         })();`,
      ]);
      children.push(many);
      const [line] = (await once(createInterface({ input: many.stdout! }), 'line')) as [string];
      const ports = JSON.parse(line) as number[];
      const found = await listeningPorts();
      const byPort = new Map(found.map((l) => [l.port, l]));
      for (const [i, port] of ports.entries()) {
        const listed = byPort.get(port);
        // A port is listed once (a preview is by port), 127.0.0.1 first: a ::1 listener may get a
        // port that something on 127.0.0.1 of this machine holds, and then that one is listed.
        if (i >= 60 && listed?.address === '127.0.0.1') continue;
        expect(listed).toEqual({
          port,
          address: i < 60 ? '127.0.0.1' : '::1',
          pid: many.pid,
          process: expect.stringMatching(/^node/),
        });
      }
    },
  );

  it('reads /proc/net/tcp6 addresses, IPv4-mapped ones included, and leaves out what loopback cannot reach', () => {
    const header =
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const row = (address: string, port: number, state: string, inode: number) =>
      `   0: ${address}:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000000000000000000000000000:0000 ${state} 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;
    const text =
      header +
      row('00000000000000000000000001000000', 5173, '0A', 11) + // ::1
      row('00000000000000000000000000000000', 3000, '0A', 12) + // ::
      row('0000000000000000FFFF00000100007F', 8080, '0A', 13) + // ::ffff:127.0.0.1
      row('B80D0120000000000000000001000000', 9000, '0A', 14) + // 2001:db8::1, not loopback
      row('00000000000000000000000001000000', 5174, '01', 15); // established, not listening
    expect(parseProcNetTcp(text, true).map(({ port, address }) => ({ port, address }))).toEqual([
      { port: 5173, address: '::1' },
      { port: 3000, address: '::' },
      { port: 8080, address: '127.0.0.1' },
    ]);
    const v4 =
      header.replace(/ +remote/, ' rem') +
      `   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21 1\n` +
      `   1: 0501A8C0:1436 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22 1\n`;
    expect(parseProcNetTcp(v4, false).map(({ port, address }) => ({ port, address }))).toEqual([
      { port: 5173, address: '127.0.0.1' },
    ]);
  });
});
