#!/usr/bin/env node
// A/B of the preview path: node test/bench/previews/ab.mjs CHECKOUT_A CHECKOUT_B … (built
// checkouts; `CHECKOUT:ENV=V,ENV2=W` gives one side its own environment; `ssh` is a side of `ssh -L`
// through a throwaway sshd, sshd's forwarding process in the agent's columns and ssh in the core's,
// whose syscalls do not include wrk's). Each side runs in its own
// process (ab-side.mjs: that checkout's agent and core, a preview of one nginx shared by all
// sides); wrk runs on each in turn, AB_ROUNDS rounds of AB_S seconds (AB_C connections, AB_PATH),
// and the medians are printed: req/s, p50/p99, CPU per request (user/system µs) of the agent and
// the core from /proc, and read/write syscalls per request ×10 (the core's include wrk's, reaped
// by it); then each side's mean ± standard error of the CPU per request, and every later side's
// differences from the first, paired round by round (mean ± standard error: a difference of
// 1 µs hides in medians of few rounds, not in the pairs). Alternating under the same load is what
// makes a change on this shared machine visible.
// AB_FLAGS adds Node flags to the core (--cpu-prof, --trace-gc with AB_ERR=1 to see them);
// BENCH_AGENT_NODE_FLAGS to the agent. AB_SHOW=1 prints every round (stderr), not only the medians.
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
const roots = process.argv.slice(2);
const ROUNDS = Number(process.env.AB_ROUNDS ?? 3),
  SECS = process.env.AB_S ?? '4';
const PATH = process.env.AB_PATH ?? '/asset.js';
const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-ab-'));
chmodSync(dir, 0o755);
const root = join(dir, 'www');
mkdirSync(root);
writeFileSync(join(root, 'asset.js'), 'x'.repeat(4096));
execFileSync('truncate', ['-s', '256M', join(root, 'big.bin')]);
const ngPort = 18000 + Math.floor(Math.random() * 1000);
writeFileSync(
  join(dir, 'nginx.conf'),
  `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_requests 1000000;
  client_body_temp_path ${dir}/nb; proxy_temp_path ${dir}/np; fastcgi_temp_path ${dir}/nf; uwsgi_temp_path ${dir}/nu; scgi_temp_path ${dir}/ns;
  server { listen 127.0.0.1:${ngPort}; root ${root}; } }\n`,
);
const ng = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' });
await new Promise((r) => setTimeout(r, 500));
const origin = process.env.AB_ORIGIN ? Number(process.env.AB_ORIGIN) : ngPort;
const sides = [];
for (const spec of roots) {
  const [r, extra = ''] = spec.split(':');
  const childEnv = {
    ...process.env,
    ...Object.fromEntries(
      extra
        .split(',')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    ),
  };
  const child = spawn(
    process.execPath,
    [
      ...(process.env.AB_FLAGS?.split(' ').filter(Boolean) ?? []),
      join(import.meta.dirname, 'ab-side.mjs'),
      r,
      String(origin),
    ],
    { env: childEnv, stdio: ['pipe', 'pipe', process.env.AB_ERR ? 'inherit' : 'ignore'] },
  );
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    for (;;) {
      const { value, done } = await lines.next();
      if (done) throw new Error('side ended');
      if (value?.startsWith('{')) return JSON.parse(value);
      if (process.env.AB_ERR) console.error(value);
    }
  };
  await next();
  sides.push({ r: spec, child, next, res: [] });
}
for (let i = 0; i < ROUNDS; i++)
  for (const s of sides) {
    s.child.stdin.write(`wrk ${SECS} ${PATH} ${process.env.AB_C ?? 32}\n`);
    s.res.push(await s.next());
    if (process.env.AB_SHOW) console.error(s.r, JSON.stringify(s.res.at(-1)));
  }
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log('load', execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim());
for (const s of sides) {
  const m = (f) => med(s.res.map(f)).toFixed(1);
  console.log(
    s.r.padEnd(34),
    'rps',
    m((x) => x.rps),
    'p50',
    m((x) => x.p50),
    'p99',
    m((x) => x.p99),
    'agent u/s',
    m((x) => x.agentUs[0]),
    m((x) => x.agentUs[1]),
    'core u/s',
    m((x) => x.coreUs[0]),
    m((x) => x.coreUs[1]),
    'io a r/w',
    m((x) => x.agentIo[0] * 10),
    m((x) => x.agentIo[1] * 10),
    'c r/w',
    m((x) => x.coreIo[0] * 10),
    m((x) => x.coreIo[1] * 10),
    'wakes a/c',
    m((x) => (x.wakes?.[0] ?? 0) * 10),
    m((x) => (x.wakes?.[1] ?? 0) * 10),
    'all',
    s.res.map((x) => x.rps.toFixed(0)).join(','),
  );
}
/** Mean and standard error of the mean. */
const meanSe = (a) => {
  const mean = a.reduce((x, y) => x + y, 0) / a.length;
  const sd = Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, a.length - 1));
  return `${mean.toFixed(2)} ± ${(sd / Math.sqrt(a.length)).toFixed(2)}`;
};
const measures = {
  rps: (x) => x.rps,
  'agent u': (x) => x.agentUs[0],
  'agent s': (x) => x.agentUs[1],
  'core u': (x) => x.coreUs[0],
  'core s': (x) => x.coreUs[1],
  'agent+core': (x) => x.agentUs[0] + x.agentUs[1] + x.coreUs[0] + x.coreUs[1],
};
console.log('mean ± standard error per side (µs per request; rps)');
for (const s of sides)
  console.log(
    s.r.padEnd(34),
    Object.entries(measures)
      .map(([name, f]) => `${name} ${meanSe(s.res.map(f))}`)
      .join('  '),
  );
console.log(`paired differences from ${sides[0]?.r} (this side minus it, round by round)`);
for (const s of sides.slice(1))
  console.log(
    s.r.padEnd(34),
    Object.entries(measures)
      .map(([name, f]) => `${name} ${meanSe(s.res.map((x, i) => f(x) - f(sides[0].res[i])))}`)
      .join('  '),
  );
for (const s of sides) s.child.stdin.write('quit\n');
await new Promise((r) => setTimeout(r, 1000));
ng.kill();
rmSync(dir, { recursive: true, force: true });
