#!/usr/bin/env node
// A small HTTP load generator (wrk's -c/-d, in Node): CONNECTIONS keep-alive connections each
// sending GET / one after another to http://127.0.0.1:PORT/ for SECONDS; prints one JSON line:
// requests per second, the p99 latency in ms, and the CPU this generator spent meanwhile (µs).
// Run beside the origin (direct TCP, in its namespace) or against a preview's local address
// (through the link), so both sides pay the same client cost.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

const [port, seconds = '5', connections = '32'] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: Number(connections) });
const latencies = [];
let failed = 0;
const end = performance.now() + Number(seconds) * 1000;

function get() {
  return new Promise((resolve) => {
    const began = performance.now();
    const req = request({ host: '127.0.0.1', port: Number(port), path: '/', agent }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(performance.now() - began);
        else failed++;
        resolve();
      });
    });
    req.on('error', () => {
      failed++;
      resolve();
    });
    req.end();
  });
}

const started = performance.now();
const cpuBefore = process.cpuUsage();
await Promise.all(
  Array.from({ length: Number(connections) }, async () => {
    while (performance.now() < end) await get();
  }),
);
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const p99 = latencies[Math.min(latencies.length - 1, Math.floor(0.99 * latencies.length))] ?? NaN;
agent.destroy();
console.log(
  JSON.stringify({
    rps: latencies.length / elapsed,
    p99,
    failed,
    requests: latencies.length,
    cpu_us: cpu.user + cpu.system,
  }),
);
