// Fuzz of the native relay through the public API (loadNativeLanes().relay, sealRecord), run by run.sh
// under ASan: random records, chunkings, fromNet hand-overs and corruptions (bit flips, cuts, random
// length fields); each stream must end as it should, with bytesIn exactly the records before the fault.
import { createServer, connect } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
const { loadNativeLanes, deriveLaneKeys, sealRecord, RecordType } = await import(process.argv[2]);
const iterations = Number(process.argv[3] ?? 200);
const lanes = loadNativeLanes();
if ('unavailable' in lanes) throw new Error(lanes.unavailable);
const server = createServer({ allowHalfOpen: true });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const queue = [];
server.on('connection', (s) => queue.push(s));
const pair = async () => {
  const a = connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => a.once('connect', r));
  while (queue.length === 0) await new Promise((r) => setImmediate(r));
  return [a, queue.shift()];
};
const secret = randomBytes(32),
  grant = randomBytes(16);
const peerKeys = deriveLaneKeys(secret, grant, 1n, 'client');
const tally = {};
for (let it = 0; it < iterations; it++) {
  const [peerEnd, laneEnd] = await pair();
  const [app, relayEnd] = await pair();
  const n = randomInt(1, 6);
  const payloads = Array.from({ length: n }, () => {
    const k = randomInt(4);
    return randomBytes(k === 0 ? 0 : k === 1 ? 65536 : k === 2 ? randomInt(1, 41) : randomInt(1, 65537));
  });
  const seq0 = (BigInt(randomInt(3)) * ((1n << 64n) - 10n)) / 2n; // 0, near 2^63, near 2^64 (some overflow)
  const records = payloads.map((p, i) => sealRecord(peerKeys.send, seq0 + BigInt(i), RecordType.Data, p));
  records.push(sealRecord(peerKeys.send, seq0 + BigInt(n), RecordType.Eof, Buffer.alloc(0)));
  let stream = Buffer.concat(records);
  const mode = randomInt(4); // 0 none, 1 flip, 2 cut, 3 random length field
  let at = stream.length;
  if (mode === 1) {
    at = randomInt(stream.length);
    stream[at] ^= 1 << randomInt(8);
  }
  if (mode === 2) {
    at = randomInt(stream.length);
    stream = stream.subarray(0, at);
  }
  if (mode === 3) {
    const r = randomInt(records.length);
    let start = 0;
    for (let i = 0; i < r; i++) start += records[i].length;
    at = start;
    stream = Buffer.from(stream);
    stream.writeUInt32BE(randomInt(2) ? randomInt(2 ** 32) : randomInt(0, 70000), start);
  }
  let delivered = 0;
  for (let i = 0, s = 0; i < payloads.length && s + records[i].length <= at; s += records[i].length, i++)
    delivered += payloads[i].length;
  const handOver = randomInt(stream.length + 1);
  const fd = lanes.adoptSocket(relayEnd).fd;
  const relay = lanes.relay({
    net: lanes.adoptSocket(laneEnd).fd,
    localRead: fd,
    localWrite: fd,
    closeLocal: true,
    localKind: 'socket',
    keys: deriveLaneKeys(secret, grant, 1n, 'agent'),
    sendSeq: 0n,
    receiveSeq: seq0,
    fromNet: stream.subarray(0, handOver),
  });
  const got = [];
  app.on('data', (c) => got.push(c));
  app.on('error', () => {});
  const appEnded = new Promise((r) => app.once('end', r));
  const peerEnded = new Promise((r) => peerEnd.once('end', r));
  peerEnd.on('data', () => {});
  peerEnd.on('error', () => {});
  for (let from = handOver; from < stream.length;) {
    const to = Math.min(stream.length, from + randomInt(1, 80000));
    peerEnd.write(stream.subarray(from, to));
    from = to;
    if (randomInt(2)) await new Promise((r) => setImmediate(r));
  }
  if (mode === 0) {
    await appEnded;
    app.end();
    await peerEnded;
  }
  peerEnd.end();
  const end = await relay.ended;
  const key = end.how + ':' + (end.message ?? '').split(':')[0];
  tally[key] = (tally[key] ?? 0) + 1;
  if (mode === 0 && end.how !== 'eof') throw new Error(`clean stream ended ${JSON.stringify(end)}`);
  if (mode !== 0 && end.how !== 'error') throw new Error(`corrupt stream (mode ${mode}) ended ${JSON.stringify(end)}`);
  if (end.bytesIn !== delivered)
    throw new Error(`bytesIn ${end.bytesIn} != ${delivered} (mode ${mode}) ${end.message}`);
  if (mode === 0 && !Buffer.concat(got).equals(Buffer.concat(payloads))) throw new Error('data differs');
  app.destroy();
  peerEnd.destroy();
  if (it % 500 === 499) console.log('at', it + 1, JSON.stringify(tally));
}
server.close();
console.log('fuzz ok', iterations, JSON.stringify(tally));
