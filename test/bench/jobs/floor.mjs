#!/usr/bin/env node
// The floor under an artifact download on this machine, with no Hangar in it (floor.c): a file
// streamed from one process to another over loopback and written to a local file while its sha256
// is taken, what a plain encrypted, end-to-end checked transfer costs. `tls`: TLS 1.3 with the
// lane's cipher (AES-256-GCM as TLS_AES_256_GCM_SHA384; lane/src/native/relay.c), `tcp`: the same
// without encryption, which any encrypted transfer pays too. C with blocking sockets and 64 KiB
// reads and writes (the lane's record size), so that what it costs is the work (copies, AES-GCM,
// sha256, the page cache), not a runtime's.
// bench:jobs runs it beside the artifact row (`floorTransfer`); alone:
//
//   node test/bench/jobs/floor.mjs FILE [tls|tcp]   (prints MB/s and CPU ms per MB per side)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '../../support/self-signed.mjs';

/**
 * Builds floor.c into `dir` (the system's gcc and libssl; Debian: `apt-get install gcc libssl-dev`)
 * and makes a self-signed P-256 certificate for `localhost` there; returns what floorTransfer takes.
 */
export function buildFloor(dir) {
  const bin = join(dir, 'floor');
  execFileSync('gcc', ['-O2', '-o', bin, join(import.meta.dirname, 'floor.c'), '-pthread', '-lssl', '-lcrypto'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  selfSignedCertificate(dir, { name: 'floor', commonName: 'localhost' });
  return { bin, cert: join(dir, 'floor-cert.pem'), key: join(dir, 'floor-key.pem') };
}

/** The lines a child prints, one at a time. */
function lines(child) {
  const waiting = [];
  const queued = [];
  let partial = '';
  child.stdout.on('data', (chunk) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const line of parts) (waiting.shift() ?? ((l) => queued.push(l)))(line);
  });
  // 'close', not 'exit': a child's last line may still be on its way when it has exited.
  const exited = new Promise((_, reject) =>
    child.once('close', (code) => reject(new Error(`floor ${child.spawnargs[1]} ended (${code}) without its figures`))),
  );
  exited.catch(() => {});
  return () =>
    queued.length > 0 ? Promise.resolve(queued.shift()) : Promise.race([new Promise((r) => waiting.push(r)), exited]);
}

/**
 * One floor transfer of `file` to `out`: a receiver and a sender, a process each. Seconds from the
 * connection's being set up to the file written and hashed, each side's CPU (ms) over that, the
 * sha256 and the suite. `floor` is buildFloor's.
 */
export async function floorTransfer({ floor, mode, file, out }) {
  const receiver = spawn(floor.bin, ['receive', mode, out, floor.cert, floor.key], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const fromReceiver = lines(receiver);
  const port = /^port (\d+)$/.exec(await fromReceiver())?.[1];
  const sender = spawn(floor.bin, ['send', mode, port, file, floor.cert], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [received, sent] = await Promise.all([fromReceiver(), lines(sender)()].map(async (p) => JSON.parse(await p)));
  await Promise.all([receiver, sender].map((child) => child.exitCode ?? new Promise((r) => child.once('exit', r))));
  const size = statSync(file).size;
  if (received.bytes !== size) throw new Error(`floor (${mode}) received ${received.bytes} of ${size} bytes`);
  return {
    seconds: received.seconds,
    receiverMs: received.cpuMs,
    senderMs: sent.cpuMs,
    sha256: received.sha256,
    cipher: sent.cipher,
  };
}

if (import.meta.filename === process.argv[1]) {
  const [file, mode = 'tls'] = process.argv.slice(2);
  const dir = mkdtempSync(join(tmpdir(), 'hangar-floor-'));
  try {
    const floor = buildFloor(dir);
    const mb = statSync(file).size / 1e6;
    const r = await floorTransfer({ floor, mode, file, out: join(dir, 'out') });
    console.log(
      `${mode} (${r.cipher}): ${(mb / r.seconds).toFixed(0)} MB/s, CPU per MB: sender ${(r.senderMs / mb).toFixed(2)} ms, ` +
        `receiver ${(r.receiverMs / mb).toFixed(2)} ms, sha256 ${r.sha256.slice(0, 16)}…`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
