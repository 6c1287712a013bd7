#!/usr/bin/env node
// Keystroke echo at a person's pace through a pty running cat (raw, no echo: the process echoes),
// relayed three ways on loopback, each with a client process and an agent process:
//   lanes   the native relay at both ends (@hangar/lane; the agent side relays the pty master)
//   socat   socat at both ends, over TLS (socat's own C and OpenSSL; the floor to reach)
//   node    a Node TLS relay pair (net ↔ tls, tls ↔ node-pty), as two bare Node processes
// The rounds alternate (lanes, socat, node, lanes, …) so load on this shared machine falls on all
// three alike. Prints p50/p90 ms per way and the ratios to socat.
//
//   node test/bench/lane/echo.mjs [--keys 100] [--pause 50] [--rounds 3]
// Needs lane/build/Release/lane.node (npm ci, or `npx node-gyp rebuild` in lane/), lane/dist
// (npm run build), socat and openssl.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { selfSignedCertificate } from '../../support/self-signed.mjs';
import { freePort, percentile, requirePrograms, runCleanups, sleep, waitForPort } from '../support.mjs';

const LANE = new URL('../../../lane/dist/index.js', import.meta.url).href;
/** The pty's program: raw, no echo, says R when it is (a key sent before stty would sit in the line buffer). */
const PROGRAM = 'stty raw -echo; printf R; exec cat';
const SHELL = ['-c', PROGRAM];

const role = process.argv[2];
if (role === 'lane-agent') await laneAgent(...process.argv.slice(3));
else if (role === 'lane-client') await laneClient(...process.argv.slice(3));
else if (role === 'node-agent') await nodeAgent(...process.argv.slice(3));
else if (role === 'node-client') await nodeClient(...process.argv.slice(3));
else await main();

/** node-pty's cat. */
async function spawnCat() {
  const { spawn: spawnPty } = await import('node-pty');
  return spawnPty('sh', SHELL, { cols: 80, rows: 24, env: { PATH: process.env.PATH } });
}

/**
 * Stops node-pty's own reader of the master (after the resume it scheduled when it was made, which
 * would start it again) and returns what it had read: the output to send before the relay's.
 */
async function stopPtyReader(pty) {
  pty._socket.pause();
  await new Promise((resolve) => setImmediate(resolve));
  pty._socket._handle.readStop();
  const pending = [];
  for (let chunk = pty._socket.read(); chunk !== null; chunk = pty._socket.read()) pending.push(Buffer.from(chunk));
  return Buffer.concat(pending);
}

async function lanes() {
  const { loadNativeLanes, deriveLaneKeys } = await import(LANE);
  const native = loadNativeLanes();
  if ('unavailable' in native) throw new Error(`lanes: ${native.unavailable}`);
  return { native, deriveLaneKeys };
}

async function laneAgent(port, secret, grant) {
  const { native, deriveLaneKeys } = await lanes();
  const server = createServer((socket) => {
    socket.pause();
    spawnCat().then(async (pty) => {
      const output = await stopPtyReader(pty);
      const master = native.dupFd(pty._fd);
      const { fd, pending } = native.adoptSocket(socket);
      native
        .relay({
          net: fd,
          localRead: master,
          localWrite: master,
          closeLocal: true,
          localKind: 'pty',
          keys: deriveLaneKeys(Buffer.from(secret, 'hex'), Buffer.from(grant, 'hex'), 1n, 'agent'),
          sendSeq: 0n,
          receiveSeq: 0n,
          fromNet: pending,
          toNet: output,
        })
        .ended.then(() => pty.kill());
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

async function laneClient(port, agentPort, secret, grant) {
  const { native, deriveLaneKeys } = await lanes();
  const server = createServer((app) => {
    app.pause();
    const lane = connect(Number(agentPort), '127.0.0.1', () => {
      const local = native.adoptSocket(app);
      native.relay({
        net: native.adoptSocket(lane).fd,
        localRead: local.fd,
        localWrite: local.fd,
        closeLocal: true,
        localKind: 'socket',
        keys: deriveLaneKeys(Buffer.from(secret, 'hex'), Buffer.from(grant, 'hex'), 1n, 'client'),
        sendSeq: 0n,
        receiveSeq: 0n,
        toNet: local.pending,
      });
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

async function nodeAgent(port, dir) {
  const { key, cert } = selfSignedCertificate(dir, { name: 'lane-bench', commonName: 'localhost' });
  const server = createTlsServer({ key, cert }, (socket) => {
    socket.setNoDelay(true);
    spawnCat().then((pty) => {
      pty.onData((data) => socket.write(data));
      socket.on('data', (data) => pty.write(data.toString('latin1')));
      socket.on('close', () => pty.kill());
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

async function nodeClient(port, agentPort) {
  const server = createServer((app) => {
    app.setNoDelay(true);
    const tls = tlsConnect({ port: Number(agentPort), host: '127.0.0.1', rejectUnauthorized: false }, () => {
      tls.setNoDelay(true);
      app.pipe(tls).pipe(app);
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

function child(args, cleanups) {
  const proc = spawn(process.execPath, [new URL(import.meta.url).pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => proc.kill());
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (line) => line === 'ready' && resolve(proc));
    proc.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}) before it was ready`)));
  });
}

function socat(args, cleanups) {
  const proc = spawn('socat', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => proc.kill());
}

/** Sends `keys` single bytes `pause` ms apart on a connection to `port`; each one's echo time, ms. */
async function echoTimes(port, keys, pause) {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  await new Promise((resolve) => {
    const ready = (chunk) => chunk.includes(0x52) && (socket.off('data', ready), resolve());
    socket.on('data', ready);
  });
  let waiting;
  socket.on('data', (chunk) => {
    if (waiting && chunk.includes(waiting.key)) waiting.done(process.hrtime.bigint());
  });
  const once = (key) =>
    new Promise((resolve) => {
      const sent = process.hrtime.bigint();
      waiting = { key, done: (at) => resolve(Number(at - sent) / 1e6) };
      socket.write(Buffer.of(key));
    });
  await once(0x21); // warm: the pty and the processes are up
  const times = [];
  for (let i = 0; i < keys; i++) {
    await sleep(pause);
    times.push(await once(0x61 + (i % 26)));
  }
  socket.destroy();
  return times;
}

async function main() {
  requirePrograms({ socat: 'socat', openssl: 'openssl' });
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      keys: { type: 'string', default: '100' },
      pause: { type: 'string', default: '50' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const keys = Number(values.keys);
  const pause = Number(values.pause);
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-bench-'));
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const secret = randomBytes(32).toString('hex');
    const grant = randomBytes(16).toString('hex');
    const ports = {};
    for (const name of ['laneAgent', 'lane', 'socatAgent', 'socat', 'nodeAgent', 'node'])
      ports[name] = await freePort();
    await child(['lane-agent', String(ports.laneAgent), secret, grant], cleanups);
    await child(['lane-client', String(ports.lane), String(ports.laneAgent), secret, grant], cleanups);
    await child(['node-agent', String(ports.nodeAgent), dir], cleanups);
    await child(['node-client', String(ports.node), String(ports.nodeAgent)], cleanups);
    selfSignedCertificate(dir, { name: 'lane-bench', commonName: 'localhost' }); // node-agent's; socat reads it too
    const pem = (name) => join(dir, `lane-bench-${name}.pem`);
    socat(
      [
        `OPENSSL-LISTEN:${ports.socatAgent},bind=127.0.0.1,reuseaddr,fork,cert=${pem('cert')},key=${pem('key')},verify=0,nodelay`,
        `SYSTEM:${PROGRAM},pty,raw,echo=0`,
      ],
      cleanups,
    );
    socat(
      [
        `TCP-LISTEN:${ports.socat},bind=127.0.0.1,reuseaddr,fork,nodelay`,
        `OPENSSL:127.0.0.1:${ports.socatAgent},verify=0,nodelay`,
      ],
      cleanups,
    );
    await waitForPort(ports.socatAgent, 'socat (agent side)');
    await waitForPort(ports.socat, 'socat (client side)');
    const ways = ['lane', 'socat', 'node'];
    const times = Object.fromEntries(ways.map((way) => [way, []]));
    for (let round = 0; round < rounds; round++) {
      for (const way of ways) {
        times[way].push(...(await echoTimes(ports[way], keys, pause)));
        process.stderr.write(`round ${round + 1}/${rounds}: ${way} done\n`);
      }
    }
    const floor = { p50: percentile(times.socat, 50), p90: percentile(times.socat, 90) };
    console.log(
      `Keystroke echo through a pty running cat, ${pause} ms between keys, ${keys * rounds} keys per way (p50 / p90 ms, × socat)`,
    );
    for (const way of ways) {
      const p50 = percentile(times[way], 50);
      const p90 = percentile(times[way], 90);
      console.log(
        `  ${way.padEnd(6)} ${p50.toFixed(3)} / ${p90.toFixed(3)}   (${(p50 / floor.p50).toFixed(2)}× / ${(p90 / floor.p90).toFixed(2)}×)`,
      );
    }
  } finally {
    await runCleanups(cleanups);
  }
}
