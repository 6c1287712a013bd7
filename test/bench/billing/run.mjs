#!/usr/bin/env node
// Meter throughput (issue 15): 10,000 usage records (signed build minutes) from 50 hosts through
// the relay to the Stripe stand-in, on SQLite and on PostgreSQL. Prints records/s acknowledged by
// the relay (usage.report over HTTP), records/s at "Stripe" (meter events the relay's outbox sent
// and the stand-in accepted), and the relay process's CPU per record. Next to them, measured in
// the same run: the same 10,000 meter events sent straight to the stand-in through the Stripe SDK
// at the outbox's concurrency (the floor any sender pays), and bare Ed25519 verification of the
// records in this process (the floor of the relay's per-record check).
// The stand-in is a local process-less server (test/fixtures/stripe-stand-in): these are not
// numbers about Stripe itself.
// Knobs: BENCH_RECORDS (10000), BENCH_HOSTS (50), BENCH_BATCH (100), BENCH_STORAGE=sqlite,postgres.
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import Stripe from 'stripe';
import {
  RelayClient,
  enrollProofBytes,
  makeLoginProof,
  signUsageRecord,
  toHex,
  usageRecordBytes,
  usageRecordKey,
} from '@hangar/shared';
import {
  HANGAR_METER_EVENT as METER,
  hangarCatalogue,
  relayBillingFlags,
  startStripeStandIn,
} from '../../fixtures/stripe-stand-in/stand-in.mjs';
import { cpuMs, sleep, startPostgres, startRelay } from '../support.mjs';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 10_000);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 50);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const STORAGES = (process.env.BENCH_STORAGE ?? 'sqlite,postgres').split(',');
const HOSTS_PER_ACCOUNT = 5;
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-billing-')));
const keys = {
  secretKey: `sk_test_${randomBytes(12).toString('hex')}`,
  webhookSecret: `whsec_${randomBytes(12).toString('hex')}`,
};
writeFileSync(join(dir, 'sk'), keys.secretKey);
writeFileSync(join(dir, 'whsec'), keys.webhookSecret);

function newKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  return { publicKey: toHex(raw), signer: { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) } };
}

function standInOptions() {
  return { ...keys, ...hangarCatalogue() };
}

function startBillingRelay(storageArgs, standIn) {
  return startRelay([
    '--listen',
    '127.0.0.1:0',
    ...storageArgs,
    '--rate-limit-scale',
    '100000',
    '--password-hash-cost',
    '10',
    // One-second minutes: records of attempts that started now, after the subscription did
    // (earlier minutes would be the trial's, counted but never billed).
    '--billing-minute-ms',
    '1000',
    ...relayBillingFlags(standIn.url, { secretKeyFile: join(dir, 'sk'), webhookSecretFile: join(dir, 'whsec') }),
  ]);
}

/** Pro accounts (Checkout completed at the stand-in, webhooks applied) with 5 enrolled hosts each. */
async function setUp(client, standIn) {
  const hosts = [];
  for (let a = 0; a < Math.ceil(HOSTS / HOSTS_PER_ACCOUNT); a++) {
    const device = newKey();
    const email = `bench-${a}-${randomBytes(3).toString('hex')}@example.com`;
    const proof = makeLoginProof(device.signer, { relayOrigin: client.origin, identity: email });
    const session = await client.call('auth.signup', {
      email,
      password: 'a benchmark password',
      device: { public_key: device.publicKey, name: 'bench' },
      proof,
    });
    const auth = { accessToken: session.access_token };
    const { url } = await client.call('billing.checkout', { plan: 'pro' }, auth);
    await standIn.completeCheckout(url);
    for (let h = 0; h < HOSTS_PER_ACCOUNT && hosts.length < HOSTS; h++) {
      const host = newKey();
      const certFingerprint = createHash('sha256').update(randomBytes(32)).digest('hex');
      const token = await client.call('hosts.enroll_token', { name: `h${hosts.length}` }, auth);
      const enrollProof = toHex(
        host.signer.sign(enrollProofBytes({ tokenId: token.token_id, publicKey: host.publicKey, certFingerprint })),
      );
      const enrolled = await client.call('hosts.enroll', {
        token_id: token.token_id,
        relay_secret: token.relay_secret,
        host: { public_key: host.publicKey, cert_fingerprint: certFingerprint, name: `h${hosts.length}` },
        proof: enrollProof,
      });
      hosts.push({ ...host, hostId: enrolled.host_id });
    }
  }
  return hosts;
}

/** RECORDS records over the hosts: attempts of 20 minutes, signed now (not measured). */
function makeRecords(hosts) {
  const perHost = Math.ceil(RECORDS / hosts.length);
  const startedAt = Date.now();
  return hosts.map((host, h) =>
    Array.from({ length: Math.min(perHost, RECORDS - h * perHost) }, (_, i) =>
      signUsageRecord(host.signer, {
        attempt_id: `a-${h}-${Math.floor(i / 20)}`,
        job_id: `j-bench${String(Math.floor(i / 20)).padStart(4, '0')}`,
        minute_index: i % 20,
        started_at: startedAt,
      }),
    ),
  );
}

async function benchStorage(label, storageArgs) {
  const standIn = await startStripeStandIn(standInOptions());
  const relay = await startBillingRelay(storageArgs, standIn);
  standIn.setWebhookUrl(`${relay.url}/v1/stripe/webhook`);
  try {
    const client = new RelayClient({ url: relay.url });
    const hosts = await setUp(client, standIn);
    const batches = makeRecords(hosts);
    const total = batches.reduce((n, b) => n + b.length, 0);
    const wanted = batches.flat().map((r) => usageRecordKey(r));
    await sleep(500); // let the outbox settle after set-up
    const cpuBefore = cpuMs(relay.child.pid);
    const start = performance.now();
    // Every host sends its records in batches, all hosts at once (as 50 agents coming back online).
    await Promise.all(
      hosts.map(async (host, h) => {
        const records = batches[h];
        for (let at = 0; at < records.length; at += BATCH) {
          const result = await client.call('usage.report', {
            host_id: host.hostId,
            records: records.slice(at, at + BATCH),
          });
          if (result.refused.length > 0) throw new Error(`refused: ${JSON.stringify(result.refused[0])}`);
        }
      }),
    );
    const ackedMs = performance.now() - start;
    for (;;) {
      if (wanted.every((key) => standIn.meterEvents.has(key))) break;
      if (performance.now() - start > 300_000)
        throw new Error(`only ${standIn.meterEvents.size} of ${total} at Stripe after 5 minutes`);
      await sleep(20);
    }
    const stripeMs = performance.now() - start;
    const cpu = cpuMs(relay.child.pid) - cpuBefore;
    return {
      label,
      total,
      ackedPerS: (total / ackedMs) * 1000,
      stripePerS: (total / stripeMs) * 1000,
      cpuPerRecordUs: (cpu * 1000) / total,
    };
  } finally {
    relay.child.kill('SIGTERM');
    await new Promise((resolve) => relay.child.once('exit', resolve));
    await standIn.close();
  }
}

/** The floor: the same number of meter events straight through the SDK to a fresh stand-in, 8 at a time. */
async function directToStandIn() {
  const standIn = await startStripeStandIn(standInOptions());
  const url = new URL(standIn.url);
  const stripe = new Stripe(keys.secretKey, {
    protocol: 'http',
    host: url.hostname,
    port: Number(url.port),
    telemetry: false,
  });
  const customer = (await stripe.customers.create({ email: 'floor@example.com' })).id;
  const start = performance.now();
  let next = 0;
  const timestamp = Math.floor(Date.now() / 1000);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < RECORDS) {
        const identifier = `floor-${next++}`;
        await stripe.billing.meterEvents.create(
          { event_name: METER, identifier, timestamp, payload: { stripe_customer_id: customer, value: '1' } },
          { idempotencyKey: identifier, maxNetworkRetries: 0 },
        );
      }
    }),
  );
  const ms = performance.now() - start;
  await standIn.close();
  return (RECORDS / ms) * 1000;
}

/** The floor of the relay's per-record check: Ed25519 verification with node:crypto, in this process. */
function bareVerifyUs() {
  const host = newKey();
  const records = Array.from({ length: 2000 }, (_, i) =>
    signUsageRecord(host.signer, {
      attempt_id: `a-${i}`,
      job_id: 'j-00000000',
      minute_index: i % 20,
      started_at: Date.now(),
    }),
  );
  const key = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(host.publicKey, 'hex')]),
    format: 'der',
    type: 'spki',
  });
  const start = process.cpuUsage();
  for (const record of records) verify(null, usageRecordBytes(record), key, Buffer.from(record.signature, 'hex'));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / records.length;
}

const results = [];
let cluster;
try {
  const floorPerS = await directToStandIn();
  const verifyUs = bareVerifyUs();
  for (const storage of STORAGES) {
    if (storage === 'sqlite') {
      results.push(await benchStorage('SQLite', ['--data', join(dir, 'sqlite')]));
    } else {
      cluster ??= startPostgres(dir);
      const admin = new pg.Client({ connectionString: cluster.url('postgres') });
      await admin.connect();
      await admin.query('CREATE DATABASE bench_billing');
      await admin.end();
      results.push(await benchStorage('PostgreSQL', ['--database', cluster.url('bench_billing')]));
    }
  }
  const fmt = (n, digits = 0) =>
    n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  console.log(
    `\nMeter throughput: ${fmt(RECORDS)} usage records from ${HOSTS} hosts (batches of ${BATCH}) → relay → Stripe stand-in\n`,
  );
  console.log(
    '| storage | acked by the relay | at the stand-in (end to end) | vs SDK straight to the stand-in | relay CPU per record | vs bare Ed25519 verify |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.label} | ${fmt(r.ackedPerS)} records/s | ${fmt(r.stripePerS)} records/s | ${fmt(r.stripePerS / floorPerS, 2)}× of ${fmt(floorPerS)}/s | ${fmt(r.cpuPerRecordUs)} µs | ${fmt(r.cpuPerRecordUs / verifyUs, 1)}× of ${fmt(verifyUs)} µs |`,
    );
  }
} finally {
  cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}
