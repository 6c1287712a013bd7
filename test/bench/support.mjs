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
export async function startAgent({ data, env, port = 0 }) {
  execFileSync('mkdir', ['-p', data]);
  const child = spawn(
    process.execPath,
    [
      ...AGENT_NODE_FLAGS,
      ...(process.env.BENCH_AGENT_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      AGENT,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      data,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'warn' } },
  );
  const address = await new Promise((resolveAddress) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (process.env.BENCH_AGENT_STDOUT) process.stderr.write(line + '\n');
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line);
      if (event.event === 'listening') resolveAddress(event.address);
    });
  });
  return { child, address };
}
