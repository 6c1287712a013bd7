#!/usr/bin/env node
// Only the keystroke part of bench:terminal (the echo at three paces against direct tmux and
// ssh + tmux), for working on latency without the floods: `node test/bench/terminal/keys-only.mjs`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AGENT, HANGAR, startAgent } from '../support.mjs';
import { echoRows, PACES, startSshd } from './keystrokes.mjs';
import { printHopTable } from './hops.mjs';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 60);
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-')));
const home = join(dir, 'home');
const data = join(dir, 'agent');
const socket = `hangar-${createHash('sha256').update(resolve(data)).digest('hex').slice(0, 12)}`;
const env = { ...process.env, HANGAR_HOME: home };
delete env.TMUX;
// BENCH_TRACE=1: the agent and hangar attach stamp each hop of a keystroke (HANGAR_TRACE_KEYS),
// printed after the table as the median time per hop (hops.mjs).
const traceDir = process.env.BENCH_TRACE ? join(dir, 'trace') : undefined;
let trace;
if (traceDir) {
  mkdirSync(traceDir);
  env.HANGAR_TRACE_KEYS = traceDir;
  const lines = [];
  // The monotonic clock the traced processes stamp (performance.now()'s origin is not exactly on it).
  trace = {
    event: (name) => lines.push(`${(Number(process.hrtime.bigint()) / 1e6).toFixed(4)} ${name} 0`),
    write: () => writeFileSync(join(traceDir, `bench-${process.pid}.trace`), lines.join('\n') + '\n'),
  };
}
const node = (bin, args) => execFileSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });

const agent = await startAgent({ data, env });
const ssh = await startSshd(dir);
let rows = [];
try {
  const code = JSON.parse(node(AGENT, ['pair', '--data', data, '--json'])).code;
  node(HANGAR, ['hosts', 'add', 'bench', agent.address, '--code', code]);
  rows = await echoRows({ socket, env, ssh, keys: KEYSTROKES, trace });
} finally {
  const stopped = new Promise((r) => agent.child.once('exit', r));
  agent.child.kill('SIGTERM');
  await stopped;
  ssh.stop?.();
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  if (trace) {
    trace.write();
    printHopTable(
      traceDir,
      PACES.map((p) => String(p.pauseMs)),
    );
  }
  if (process.env.BENCH_TRACE_KEEP) console.log(`trace kept in ${traceDir}`);
  else rmSync(dir, { recursive: true, force: true });
}
const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\nHangar keystroke echo (loopback, ${KEYSTROKES} keys per row)\n`);
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
process.exit(0);
