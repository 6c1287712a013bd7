#!/usr/bin/env node
// What the previews watch costs per poll on Linux: node test/bench/previews/ports-scan.mjs [MODULE…]
// (built listening-ports.js files; default this checkout's). Sides alternate, PS_ROUNDS rounds of
// PS_POLLS polls each, medians printed: CPU µs per poll (this process), and readlink / readdir /
// and how many of them failed, counted on node:fs. Four kinds of poll:
//   idle   the watch's look when nothing changed (listeningFingerprint)
//   list   a listing when nothing changed (listeningSnapshot: ports and their owners)
//   new    a listing right after a dev server opened a new port (its owner must be found)
//   gone   a listing right after that port closed
// PS_NOISE idle processes holding PS_FDS fds each stand in for a busy machine's other processes,
// PS_CONNS open loopback connections for a preview under load (each is two lines in the tables).
// Also per poll: the main thread's own CPU µs (/proc/self/task/<pid>/schedstat: what a keystroke
// would wait behind), its wake-ups (voluntary context switches) and the thread-pool operations
// started (fs requests and file handles, counted with async_hooks).
import { createHook } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { createInterface } from 'node:readline';
import { execFileSync } from 'node:child_process';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const modules = process.argv.slice(2);
if (modules.length === 0) modules.push(resolve(here, '../../../host-agent/dist/previews/listening-ports.js'));
const ROUNDS = Number(process.env.PS_ROUNDS ?? 3);
const POLLS = Number(process.env.PS_POLLS ?? 20);
const NOISE = Number(process.env.PS_NOISE ?? 40);
const FDS = Number(process.env.PS_FDS ?? 30);
const CONNS = Number(process.env.PS_CONNS ?? 1000);

const counts = { readlink: 0, readlinkFailed: 0, readdir: 0, readdirFailed: 0, stat: 0, pool: 0 };
createHook({
  init: (_id, type) => {
    // A request to the pool: open, read, stat… (FSREQ*) or a FileHandle's close; not the handle itself.
    if (type.startsWith('FSREQ') || type === 'FILEHANDLECLOSEREQ') counts.pool++;
  },
}).enable();
const mainTask = `/proc/self/task/${process.pid}`;
/** The main thread's CPU µs and wake-ups so far. */
const mainThread = () => ({
  us: Number(fs.readFileSync(`${mainTask}/schedstat`, 'latin1').split(' ')[0]) / 1000,
  wakeups: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(fs.readFileSync(`${mainTask}/status`, 'latin1'))[1]),
});
const wrap = (name, key, failedKey) => {
  const original = fs[name];
  fs[name] = function (...args) {
    counts[key]++;
    try {
      return original.apply(this, args);
    } catch (error) {
      if (failedKey) counts[failedKey]++;
      throw error;
    }
  };
};
wrap('readlinkSync', 'readlink', 'readlinkFailed');
wrap('readdirSync', 'readdir', 'readdirFailed');
wrap('statSync', 'stat');
syncBuiltinESMExports();

const sides = [];
for (const path of modules) sides.push({ path, module: await import(pathToFileURL(resolve(path)).href), rows: {} });

// The machine's other processes: idle, each holding FDS fds (a file opened FDS times).
const noise = [];
const devNull = fs.openSync('/dev/null', 'r');
for (let i = 0; i < NOISE; i++) {
  noise.push(spawn('sleep', ['3600'], { stdio: ['ignore', 'ignore', 'ignore', ...Array(FDS).fill(devNull)] }));
}
// A dev server that opens (and closes) a port when told, in its own process as dev servers are.
const dev = spawn(
  process.execPath,
  [
    '-e',
    `const net = require('net'); let server;
     const held = net.createServer((socket) => socket.pause()).listen(0, '127.0.0.1', () => {
       for (let i = 0; i < ${CONNS}; i++) net.connect(held.address().port, '127.0.0.1').pause();
     });
     require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
       if (line === 'close') server.close(() => console.log('closed'));
       else { server = net.createServer().listen(0, '127.0.0.1', () => console.log(server.address().port)); }
     });`,
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
const answers = createInterface({ input: dev.stdout });
const tell = (line) =>
  new Promise((done) => {
    answers.once('line', done);
    dev.stdin.write(line + '\n');
  });

async function measure(side, kind, poll) {
  const before = { ...counts };
  const cpu = process.cpuUsage();
  const main = mainThread();
  let spent = 0;
  let mainUs = 0;
  let mainWakeups = 0;
  for (let i = 0; i < POLLS; i++) {
    if (kind === 'new' || kind === 'gone') {
      // Not timed: the dev server opens a port (and for 'gone', a listing sees it, then it closes).
      const port = Number(await tell('open'));
      if (kind === 'gone') {
        await side.module.listeningSnapshot();
        await tell('close');
      }
      Object.assign(before, counts);
      const start = process.cpuUsage();
      const startMain = mainThread();
      const found = await poll();
      const used = process.cpuUsage(start);
      const endMain = mainThread();
      spent += used.user + used.system;
      mainUs += endMain.us - startMain.us;
      mainWakeups += endMain.wakeups - startMain.wakeups;
      if (
        kind === 'new' &&
        typeof found === 'object' &&
        !found.ports.some((l) => l.port === port && l.pid === dev.pid)
      ) {
        throw new Error(`${side.path}: port ${port} not named`);
      }
      if (kind === 'new') await tell('close');
      accumulate(side, kind, before);
    } else {
      await poll();
    }
  }
  if (kind === 'idle' || kind === 'list') {
    const used = process.cpuUsage(cpu);
    const endMain = mainThread();
    spent = used.user + used.system;
    mainUs = endMain.us - main.us;
    mainWakeups = endMain.wakeups - main.wakeups;
    accumulate(side, kind, before);
  }
  side.rows[kind] ??= {
    cpu: [],
    main: [],
    wakeups: [],
    ...Object.fromEntries(Object.keys(counts).map((k) => [k, []])),
  };
  side.rows[kind].cpu.push(spent / POLLS);
  side.rows[kind].main.push(mainUs / POLLS);
  side.rows[kind].wakeups.push(mainWakeups / POLLS);
  for (const key of Object.keys(counts)) {
    side.rows[kind][key].push(side.pending[key] / POLLS);
  }
  side.pending = undefined;
}
function accumulate(side, kind, before) {
  side.pending ??= Object.fromEntries(Object.keys(counts).map((k) => [k, 0]));
  for (const key of Object.keys(counts)) side.pending[key] += counts[key] - before[key];
}

try {
  await new Promise((r) => setTimeout(r, 300 + CONNS));
  for (const side of sides) await side.module.listeningSnapshot(); // warm: known sockets' owners
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of round % 2 ? [...sides].reverse() : sides) {
      await measure(side, 'idle', () => side.module.listeningFingerprint());
      await measure(side, 'list', () => side.module.listeningSnapshot());
      await measure(side, 'new', () => side.module.listeningSnapshot());
      await measure(side, 'gone', () => side.module.listeningSnapshot());
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`load: ${execFileSync('uptime').toString().trim()}`);
  console.log(
    `processes: ${fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length}, rounds ${ROUNDS} × ${POLLS} polls`,
  );
  console.log(`connections held: ${CONNS}, idle processes ${NOISE} × ${FDS} fds`);
  console.log(
    'side  poll   CPU µs/poll  main µs/poll  main wake-ups/poll  pool ops/poll  readlink (failed)  readdir (failed)  stats',
  );
  for (const [i, side] of sides.entries()) {
    for (const [kind, row] of Object.entries(side.rows)) {
      const m = (k) => median(row[k]).toFixed(1);
      console.log(
        `${String.fromCharCode(65 + i)}     ${kind.padEnd(5)}  ${m('cpu').padStart(11)}  ${m('main').padStart(12)}  ${m('wakeups').padStart(18)}  ${m('pool').padStart(13)}  ${m('readlink').padStart(8)} (${m('readlinkFailed')})  ${m('readdir').padStart(7)} (${m('readdirFailed')})  ${m('stat').padStart(5)}`,
      );
    }
  }
  for (const [i, side] of sides.entries()) console.log(`${String.fromCharCode(65 + i)} = ${side.path}`);
} finally {
  dev.kill();
  for (const child of noise) child.kill();
}
