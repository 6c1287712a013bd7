#!/usr/bin/env node
// The agent's sending side of a log or an artifact, alone: a file of random bytes sent with the
// agent's streamLog (as a follower asking for deflate gets it) or streamFile over the raw link
// (mux on TLS on loopback) to a receiver in this process that acks as the core does. The sender
// runs in a child process of its own, so its CPU time is the agent's work per MB and nothing
// else's. Alternates the builds given (checkout roots, built), BENCH_ROUNDS rounds.
//
//   node test/bench/jobs/send-file.mjs ROOT_A [ROOT_B]
//   BENCH_MB (256) BENCH_REPEAT (4: sends per run) BENCH_ROUNDS (3) BENCH_KIND (log,artifact)
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadAverage } from '../support.mjs';

const ALPN = 'hangar-link/1';

if (process.argv[2] === 'sender') {
  // Child: connects, sends the file REPEAT times on streams 2, 4, ..., prints its CPU per MB.
  const [, , , root, port, file, kind, repeat, certDir] = process.argv;
  const shared = await import(join(root, 'shared', 'dist', 'index.js'));
  const jobs = await import(join(root, 'host-agent', 'dist', 'jobs', 'index.js'));
  const socket = connect({
    port: Number(port),
    host: '127.0.0.1',
    ca: readFileSync(join(certDir, 'cert.pem')),
    servername: 'localhost',
    ALPNProtocols: [ALPN],
    // The link's suites, as the core offers them (a build from before them: Node's default).
    ...(shared.LINK_TLS_CIPHERS ? { ciphers: shared.LINK_TLS_CIPHERS } : {}),
  });
  await new Promise((r) => socket.once('secureConnect', r));
  const cipher = socket.getCipher().standardName;
  const mux = new shared.Mux(shared.wrapByteStream(socket, { later: setImmediate }), { role: 'agent' });
  const size = Number(readFileSync(`${file}.size`, 'utf8'));
  const before = process.cpuUsage();
  for (let i = 0; i < Number(repeat); i++) {
    const stream = mux.openStream({
      id: 2 + 2 * i,
      window: shared.BULK_STREAM_WINDOW,
      maxFrameBytes: shared.BULK_FRAME_BYTES,
    });
    if (kind === 'artifact') await jobs.streamFile(file, stream);
    else {
      const state = { path: file, size, final: { exitCode: 0, message: 'done' } };
      const source = { state: () => state, onChange: () => ({ dispose() {} }) };
      await jobs.streamLog(source, stream, { from: 0, follow: true, compression: 'deflate' });
    }
    if (!stream.closed) await new Promise((r) => stream.onClose(r));
  }
  const used = process.cpuUsage(before);
  const mb = (size * Number(repeat)) / 1e6;
  process.stdout.write(JSON.stringify({ msPerMb: (used.user + used.system) / 1000 / mb, cipher }) + '\n');
  // The receiver closes the connection once it has everything.
  socket.on('error', () => {});
  if (!socket.destroyed) await new Promise((r) => socket.once('close', r));
  process.exit(0);
}

const roots = process.argv.slice(2).map((root) => resolve(root));
if (roots.length === 0) roots.push(resolve(import.meta.dirname, '..', '..', '..'));
const MB = Number(process.env.BENCH_MB ?? 256);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KINDS = (process.env.BENCH_KIND ?? 'log,artifact').split(',');

const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-send-'));
execFileSync(
  'openssl',
  ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'].concat([
    '-subj',
    '/CN=localhost',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]),
  { stdio: 'ignore' },
);
const file = join(dir, 'data');
{
  const chunk = 16 * 1024 * 1024;
  const size = MB * 1024 * 1024;
  writeFileSync(file, '');
  for (let at = 0; at < size; at += chunk) writeFileSync(file, randomBytes(Math.min(chunk, size - at)), { flag: 'a' });
  writeFileSync(`${file}.size`, String(size));
}

/** One run: the receiver (this build's mux) here, the sender of `root` in a child. */
async function run(root, kind) {
  const shared = await import(join(root, 'shared', 'dist', 'index.js'));
  const server = createServer({
    key: readFileSync(join(dir, 'key.pem')),
    cert: readFileSync(join(dir, 'cert.pem')),
    ALPNProtocols: [ALPN],
    // The link's suites, as the agent's server orders them (a build from before them: Node's default).
    ...(shared.LINK_TLS_CIPHERS ? { ciphers: shared.LINK_TLS_CIPHERS, honorCipherOrder: true } : {}),
  });
  const total = MB * 1024 * 1024 * REPEAT;
  let got = 0;
  const done = new Promise((resolveDone) => {
    server.on('secureConnection', (socket) => {
      const mux = new shared.Mux(shared.wrapByteStream(socket, { later: setImmediate }), { role: 'client' });
      for (let i = 0; i < REPEAT; i++) {
        const stream = mux.openStream({ id: 2 + 2 * i, window: shared.BULK_STREAM_WINDOW });
        stream.onData((data) => {
          got += data.length;
        });
        stream.onClose(() => {
          if (i === REPEAT - 1) {
            mux.close();
            socket.end();
            resolveDone();
          }
        });
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      // The Node flags the agent runs with (that checkout's), then any asked for.
      ...(shared.AGENT_NODE_FLAGS ?? []),
      ...(process.env.BENCH_SENDER_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      import.meta.filename,
      'sender',
      root,
      String(server.address().port),
      file,
      kind,
      String(REPEAT),
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  await done;
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => child.once('exit', r));
  server.close();
  // A log's raw blocks carry a small header each: the bytes received are at least the file's.
  if (got < total) throw new Error(`received ${got} of ${total} bytes`);
  // The figures are the last line; what comes before (--trace-gc) goes to stderr.
  const lines = out.trim().split('\n');
  const figures = lines.pop();
  if (lines.length > 0) process.stderr.write(lines.join('\n') + '\n');
  return { ...JSON.parse(figures), mbps: total / 1e6 / seconds };
}

console.log(`send-file: ${MB} MiB x ${REPEAT} per run, load average ${loadAverage()}`);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of KINDS) {
      for (const root of roots) {
        const r = await run(root, kind);
        console.log(
          `round ${round} ${kind.padEnd(8)} ${root.padEnd(24)} sender ${r.msPerMb.toFixed(3)} ms/MB  ${r.mbps.toFixed(0)} MB/s  ${r.cipher}  load ${loadAverage()}`,
        );
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
