#!/usr/bin/env node
// Only the keystroke part of bench:terminal (the echo at three paces against direct tmux and
// ssh + tmux), for working on latency without the floods: `node test/bench/terminal/keys-only.mjs`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AGENT, HANGAR, startAgent } from '../support.mjs';
import { echoRows, startSshd } from './keystrokes.mjs';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 60);
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-')));
const home = join(dir, 'home');
const data = join(dir, 'agent');
const socket = `hangar-${createHash('sha256').update(resolve(data)).digest('hex').slice(0, 12)}`;
const env = { ...process.env, HANGAR_HOME: home };
delete env.TMUX;
const node = (bin, args) => execFileSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });

const agent = await startAgent({ data, env });
const ssh = await startSshd(dir);
let rows = [];
try {
  const code = JSON.parse(node(AGENT, ['pair', '--data', data, '--json'])).code;
  node(HANGAR, ['hosts', 'add', 'bench', agent.address, '--code', code]);
  rows = await echoRows({ socket, env, ssh, keys: KEYSTROKES });
} finally {
  agent.child.kill('SIGTERM');
  ssh.stop?.();
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  rmSync(dir, { recursive: true, force: true });
}
const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\nHangar keystroke echo (loopback, ${KEYSTROKES} keys per row)\n`);
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
process.exit(0);
