// What the benchmark scripts share: where the binaries are, percentiles, memory readings, and
// starting a real agent process the way `hangar up` does (same Node flags and environment).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const HANGAR = join(ROOT, 'electron', 'bin', 'hangar.js');
export const AGENT = join(ROOT, 'host-agent', 'bin', 'hangar-agent.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Resident memory of a process, KiB (Linux). */
export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

/** `hangar-agent serve` on loopback; resolves with the process and the address it printed. */
export async function startAgent({ data, env, port = 0, bin = AGENT }) {
  execFileSync('mkdir', ['-p', data]);
  const child = spawn(
    process.execPath,
    [
      ...AGENT_NODE_FLAGS,
      ...(process.env.BENCH_AGENT_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      bin,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      data,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'warn' } },
  );
  // An agent that dies, or does not listen within 30 s, fails the run instead of hanging it.
  const address = await new Promise((resolveAddress, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('hangar-agent serve did not listen within 30 s'));
    }, 30_000);
    const died = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hangar-agent serve exited (${signal ?? `code ${code}`}) before it listened`));
    };
    child.once('exit', died);
    child.once('error', reject);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (process.env.BENCH_AGENT_STDOUT) process.stderr.write(line + '\n');
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line);
      if (event.event === 'listening') {
        clearTimeout(timer);
        child.off('exit', died);
        resolveAddress(event.address);
      }
    });
  });
  // Dying later ends the run too (a bench waiting on the agent would wait forever); the signals
  // a bench stops it with are not deaths.
  child.once('exit', (code, signal) => {
    if (code === 0 || ['SIGTERM', 'SIGINT', 'SIGHUP'].includes(signal)) return;
    process.stderr.write(`bench: hangar-agent serve died (${signal ?? `exit code ${code}`}) during the run\n`);
    process.exit(1);
  });
  return { child, address };
}
