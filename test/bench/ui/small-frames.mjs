#!/usr/bin/env node
// The core's write of one small message to the page's WebSocket (an echo's 26 bytes), `ws`'s own
// send (header and payload corked, one writev) against the web server's smallFramesInOneWrite (one
// buffer, one write), on loopback, a message every 20 ms as typing sends them, alternated in
// blocks. Prints the p50 time of the send call (synchronous: the socket write happens in it) and
// the ratio. Not a test. Needs the build (electron/core/dist). BENCH_ROUNDS (default 5) × 100 each.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, loadAverage, percentile, sleep } from '../support.mjs';

const require = createRequire(join(ROOT, 'electron', 'core', 'package.json'));
const { WebSocketServer, WebSocket } = require('ws');
const { smallFramesInOneWrite } = await import(
  pathToFileURL(join(ROOT, 'electron', 'core', 'dist', 'web', 'small-frames.js')).href
);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PER_BLOCK = 100;

const server = createServer();
const wss = new WebSocketServer({ noServer: true });
const accepted = new Promise((resolve) =>
  server.on('upgrade', (request, socket, head) =>
    wss.handleUpgrade(request, socket, head, (ws) => resolve({ ws, socket })),
  ),
);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const client = new WebSocket(`ws://127.0.0.1:${server.address().port}/`);
await new Promise((resolve) => client.once('open', resolve));
const { ws, socket } = await accepted;
const fast = smallFramesInOneWrite(ws, socket);
let received;
client.on('message', () => received?.());

const echo = Buffer.from(Array.from({ length: 26 }, (_, i) => i));
const times = { ws: [], oneWrite: [] };
const load = [loadAverage()];
for (let round = 0; round < ROUNDS; round++) {
  for (const variant of round % 2 ? ['oneWrite', 'ws'] : ['ws', 'oneWrite']) {
    const send = variant === 'ws' ? ws.send.bind(ws) : fast.send.bind(fast);
    for (let i = 0; i < PER_BLOCK; i++) {
      await sleep(20);
      const arrived = new Promise((resolve) => (received = resolve));
      const started = process.hrtime.bigint();
      send(echo, { binary: true }, () => {});
      times[variant].push(Number(process.hrtime.bigint() - started) / 1e6);
      await arrived;
    }
  }
}
load.push(loadAverage());
client.terminate();
ws.terminate();
wss.close();
server.closeAllConnections();
server.close();
const p50 = (list) => percentile(list, 50);
console.log(
  `send of a 26-byte message, p50 of ${times.ws.length} each (load ${load.join(' → ')}): ws ${p50(times.ws).toFixed(4)} ms, ` +
    `one write ${p50(times.oneWrite).toFixed(4)} ms (${(p50(times.oneWrite) / p50(times.ws)).toFixed(2)}×)`,
);
