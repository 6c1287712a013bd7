#!/usr/bin/env node
// Relay benchmark (issue 12): with 1,000 simulated agents connected, how long a device takes to
// see one host change (fan-out); signaling round trip device → relay → agent → relay → device
// p50/p99; logins per second with the password hash as configured (scrypt N=2^17 by default);
// relay RSS per connected agent. On SQLite and on PostgreSQL, each next to a plain `ws` server
// measured in the same run (the floor any WebSocket relay pays): one forward hop, an echo round
// trip, its RSS per idle client; and for logins, bare scrypt of the same cost in this process.
// Knobs: BENCH_AGENTS (1000), BENCH_ROUNDS (300), BENCH_LOGINS (16), BENCH_STORAGE=sqlite,postgres.
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, scrypt, sign } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import pg from 'pg';
import { RelayClient, agentLinkBytes, enrollProofBytes, makeLoginProof, signPresence, toHex } from '@hangar/shared';
import { ROOT, percentile, rssKiB, sleep, startPostgres } from '../support.mjs';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const LOGINS = Number(process.env.BENCH_LOGINS ?? 16);
const STORAGES = (process.env.BENCH_STORAGE ?? 'sqlite,postgres').split(',');
const RELAY = join(ROOT, 'relay', 'bin', 'hangar-relay.js');
const PASSWORD = 'a benchmark password';
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-relay-')));

function newKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  return { publicKey: toHex(raw), signer: { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) } };
}

function startProcess(args, parse) {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HANGAR_LOG_LEVEL: 'warn' },
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const value = parse(JSON.parse(line));
      if (value !== undefined) resolve({ child, value });
    });
  });
}

async function createDatabase(cluster, name) {
  const client = new pg.Client({ connectionString: cluster.url('postgres') });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  return cluster.url(name);
}

/** Opens a socket; `onMessage` is attached before it opens (the relay speaks first, in the same packet). */
function openSocket(url, onMessage) {
  const socket = new WebSocket(url);
  if (onMessage) socket.on('message', (data) => onMessage(socket, data));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A simulated agent: answers the challenge, publishes presence, answers pings and signals at once. */
async function connectAgent(relayUrl, host, hostId) {
  let resolve, reject;
  const welcomed = new Promise((yes, no) => ((resolve = yes), (reject = no)));
  const socket = await openSocket(`${relayUrl.replace('http', 'ws')}/v1/agent`, (socket, data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'challenge') {
      const signature = toHex(
        host.signer.sign(agentLinkBytes({ relayOrigin: message.relay_origin, challenge: message.challenge })),
      );
      socket.send(JSON.stringify({ type: 'auth', host_id: hostId, signature }));
    } else if (message.type === 'welcome') {
      const record = { addresses: ['10.0.0.1:7070'], tailnet: [], version: 'bench', issued_at: Date.now() };
      socket.send(JSON.stringify({ type: 'presence.update', record, signature: signPresence(host.signer, record) }));
      resolve();
    } else if (message.type === 'ping') {
      socket.send('{"type":"pong"}');
    } else if (message.type === 'signal') {
      socket.send(
        JSON.stringify({
          type: 'signal',
          to_device: message.from_device.device_id,
          request_id: message.request_id,
          payload: message.payload,
          signature: message.signature,
        }),
      );
    } else if (message.type === 'error') {
      reject(new Error(message.error.message));
    }
  });
  await welcomed;
  return socket;
}

async function benchRelay(label, storageArgs) {
  const { child, value: url } = await startProcess(
    [RELAY, 'serve', '--listen', '127.0.0.1:0', ...storageArgs, '--rate-limit-scale', '10000'],
    (e) => e.url,
  );
  try {
    const client = new RelayClient({ url });
    const ownerKey = newKey();
    const email = `bench-${randomBytes(4).toString('hex')}@example.com`;
    const owner = await client.call('auth.signup', {
      email,
      password: PASSWORD,
      device: { public_key: ownerKey.publicKey, name: 'bench' },
      proof: makeLoginProof(ownerKey.signer, { relayOrigin: client.origin, identity: email }),
    });
    const auth = { accessToken: owner.access_token };
    const hosts = [];
    for (let i = 0; i < AGENTS; i++) {
      const host = { ...newKey(), cert: createHash('sha256').update(String(i)).digest('hex') };
      const token = await client.call('hosts.enroll_token', { name: `h${i}` }, auth);
      const proof = toHex(
        host.signer.sign(
          enrollProofBytes({ tokenId: token.token_id, publicKey: host.publicKey, certFingerprint: host.cert }),
        ),
      );
      const enrolled = await client.call('hosts.enroll', {
        token_id: token.token_id,
        relay_secret: token.relay_secret,
        host: { public_key: host.publicKey, cert_fingerprint: host.cert, name: `h${i}` },
        proof,
      });
      hosts.push({ host, id: enrolled.host_id });
    }
    await sleep(500);
    const rssBefore = rssKiB(child.pid);
    const sockets = [];
    for (let i = 0; i < hosts.length; i += 50) {
      sockets.push(...(await Promise.all(hosts.slice(i, i + 50).map(({ host, id }) => connectAgent(url, host, id)))));
    }
    await sleep(1000);
    const rssPerAgent = (rssKiB(child.pid) - rssBefore) / AGENTS;

    // The device: every presence event, timestamped.
    const device = await openSocket(`${url.replace('http', 'ws')}/v1/device`);
    let waiter;
    device.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type === 'ping') device.send('{"type":"pong"}');
      waiter?.(message);
    });
    const next = (match) => new Promise((resolve) => (waiter = (m) => match(m) && resolve(performance.now())));
    let snapshot = 0;
    const allSeen = new Promise(
      (resolve) => (waiter = (m) => m.type === 'presence' && ++snapshot === AGENTS && resolve()),
    );
    device.send(JSON.stringify({ type: 'auth', access_token: owner.access_token }));
    await allSeen;

    const fanout = [];
    for (let round = 0; round < Math.min(ROUNDS, 100); round++) {
      const k = round % hosts.length;
      const offline = next((m) => m.type === 'presence' && m.host.host_id === hosts[k].id && !m.host.online);
      let began = performance.now();
      sockets[k].close();
      fanout.push((await offline) - began);
      const online = next((m) => m.type === 'presence' && m.host.host_id === hosts[k].id && m.host.online);
      began = performance.now();
      sockets[k] = await connectAgent(url, hosts[k].host, hosts[k].id);
      fanout.push((await online) - began);
    }

    const signaling = [];
    for (let round = 0; round < ROUNDS; round++) {
      const requestId = `bench-${round.toString().padStart(6, '0')}`;
      const answered = next((m) => m.type === 'signal' && m.request_id === requestId);
      const began = performance.now();
      device.send(
        JSON.stringify({
          type: 'signal',
          to_host: hosts[round % hosts.length].id,
          request_id: requestId,
          payload: '{"sdp":"offer"}',
          signature: '0'.repeat(128),
        }),
      );
      signaling.push((await answered) - began);
    }
    device.close();
    for (const socket of sockets) socket.terminate();

    // Logins: LOGINS sign-ins, 4 at a time (libuv's thread pool runs scrypt), of new devices up to
    // the 16 an account may have waiting for approval, then of those again (the same password check).
    const loginKeys = Array.from({ length: Math.min(LOGINS, 16) }, () => newKey());
    const loginStart = performance.now();
    for (let i = 0; i < LOGINS; i += 4) {
      await Promise.all(
        Array.from({ length: Math.min(4, LOGINS - i) }, async (_, j) => {
          const key = loginKeys[(i + j) % loginKeys.length];
          await client.call('auth.login', {
            email,
            password: PASSWORD,
            device: { public_key: key.publicKey, name: 'bench' },
            proof: makeLoginProof(key.signer, { relayOrigin: client.origin, identity: email }),
          });
        }),
      );
    }
    const loginsPerSecond = LOGINS / ((performance.now() - loginStart) / 1000);
    return { label, fanout, signaling, loginsPerSecond, rssPerAgent };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

async function benchReference() {
  const { child, value: port } = await startProcess(
    [join(ROOT, 'test', 'bench', 'relay', 'echo-server.mjs')],
    (e) => e.port,
  );
  try {
    const url = `ws://127.0.0.1:${port}`;
    await sleep(300);
    const rssBefore = rssKiB(child.pid);
    const idle = [];
    for (let i = 0; i < AGENTS; i += 50)
      idle.push(...(await Promise.all(Array.from({ length: Math.min(50, AGENTS - i) }, () => openSocket(url)))));
    await sleep(1000);
    const rssPerClient = (rssKiB(child.pid) - rssBefore) / AGENTS;
    const watcher = await openSocket(url);
    watcher.send('watch');
    const sender = await openSocket(url);
    await sleep(100);
    let waiter;
    watcher.on('message', () => waiter?.());
    sender.on('message', () => waiter?.());
    const once = () => new Promise((resolve) => (waiter = () => resolve(performance.now())));
    const forward = [];
    for (let round = 0; round < Math.min(ROUNDS, 100) * 2; round++) {
      const seen = once();
      const began = performance.now();
      sender.send(`forward ${round}`);
      forward.push((await seen) - began);
    }
    const echo = [];
    for (let round = 0; round < ROUNDS; round++) {
      const back = once();
      const began = performance.now();
      sender.send(`echo ${round}`);
      echo.push((await back) - began);
    }
    for (const socket of [...idle, watcher, sender]) socket.terminate();
    return { forward, echo, rssPerClient };
  } finally {
    child.kill();
  }
}

/** Bare scrypt at the relay's default cost (N=2^17, r=8, p=1), 4 at a time: the floor of a login. */
async function scryptFloor() {
  const one = () =>
    new Promise((resolve, reject) =>
      scrypt(PASSWORD, randomBytes(16), 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 2 ** 17 * 8 }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  const began = performance.now();
  for (let i = 0; i < LOGINS; i += 4) await Promise.all(Array.from({ length: Math.min(4, LOGINS - i) }, one));
  return LOGINS / ((performance.now() - began) / 1000);
}

const ms = (v) => `${v.toFixed(2)} ms`;
const results = [];
let cluster;
try {
  const reference = await benchReference();
  const scryptPerSecond = await scryptFloor();
  for (const storage of STORAGES) {
    if (storage === 'sqlite') {
      results.push(await benchRelay('SQLite', ['--data', join(dir, 'sqlite')]));
    } else {
      cluster ??= startPostgres(dir, '-c max_connections=200');
      results.push(await benchRelay('PostgreSQL', ['--database', await createDatabase(cluster, 'bench')]));
    }
  }
  console.log(
    `\nHangar relay benchmark: ${AGENTS} agents connected, ${ROUNDS} signaling rounds, ${LOGINS} logins (loopback, ${process.arch})\n`,
  );
  const rows = [
    ['', ...results.map((r) => r.label), 'plain ws (reference)'],
    [
      'presence change → device, p50',
      ...results.map((r) => ms(percentile(r.fanout, 50))),
      `${ms(percentile(reference.forward, 50))} (one forward)`,
    ],
    [
      'presence change → device, p99',
      ...results.map((r) => ms(percentile(r.fanout, 99))),
      `${ms(percentile(reference.forward, 99))}`,
    ],
    [
      'signaling round trip, p50',
      ...results.map((r) => ms(percentile(r.signaling, 50))),
      `${ms(percentile(reference.echo, 50))} (echo)`,
    ],
    [
      'signaling round trip, p99',
      ...results.map((r) => ms(percentile(r.signaling, 99))),
      `${ms(percentile(reference.echo, 99))}`,
    ],
    [
      'logins/s (scrypt N=2^17)',
      ...results.map((r) => r.loginsPerSecond.toFixed(1)),
      `${scryptPerSecond.toFixed(1)} (bare scrypt)`,
    ],
    [
      'RSS per connected agent',
      ...results.map((r) => `${r.rssPerAgent.toFixed(1)} KiB`),
      `${reference.rssPerClient.toFixed(1)} KiB per client`,
    ],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join('  '));
  console.log('\nratios to the reference (× plain ws):');
  for (const r of results) {
    console.log(
      `  ${r.label}: fan-out p50 ${(percentile(r.fanout, 50) / percentile(reference.forward, 50)).toFixed(1)}×, ` +
        `signaling p50 ${(percentile(r.signaling, 50) / percentile(reference.echo, 50)).toFixed(1)}× (two hops and two lookups vs one echo), ` +
        `logins ${(r.loginsPerSecond / scryptPerSecond).toFixed(2)}× bare scrypt, RSS/agent ${(r.rssPerAgent / reference.rssPerClient).toFixed(1)}×`,
    );
  }
} finally {
  cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}
