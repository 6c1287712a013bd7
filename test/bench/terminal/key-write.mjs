// A keystroke's cost in the link after a pause, with no other process in the way: the time of
// `stream.write(key, { now: true })` on a terminal-like stream whose echo's ack waits to ride it
// (framing, the ack, the socket write) over the byte-stream transport on a loopback TCP pair. With
// two built checkouts, both are loaded in this process and alternated key by key (A/B under the
// same load): `node test/bench/terminal/key-write.mjs <checkout> [<another checkout>]`
// (PAUSE ms between keys, default 50; N keys each, default 150).
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { keyStreams, percentile } from './key-streams.mjs';

const builds = process.argv.slice(2).map((b) => resolve(b));
const PAUSE = Number(process.env.PAUSE ?? 50),
  N = Number(process.env.N ?? 150);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function setup(root) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect(server.address().port, '127.0.0.1');
  const [agentSocket] = await once(server, 'connection');
  await once(client, 'connect');
  client.setNoDelay(true);
  agentSocket.setNoDelay(true);
  return keyStreams(root, client, agentSocket);
}
const sides = [];
for (const b of builds) sides.push(await setup(b));
const times = new Map(builds.map((b) => [b, []]));
const key = Buffer.from('a');
for (let i = 0; i < N; i++) {
  for (const s of i % 2 ? [...sides].reverse() : sides) {
    // An echo comes: its ack waits to ride the next key.
    const echoed = s.until();
    s.remote.write(Buffer.from('a'), { now: true });
    await echoed;
    await sleep(PAUSE);
    const keyIn = s.until();
    const t0 = process.hrtime.bigint();
    s.local.write(key, { now: true });
    const t1 = process.hrtime.bigint();
    times.get(s.root).push(Number(t1 - t0) / 1000);
    await keyIn;
  }
}
const pct = percentile;
for (const [b, t] of times)
  console.log(
    `${b}: write with riding ack p50 ${pct(t, 0.5).toFixed(1)} us, p90 ${pct(t, 0.9).toFixed(1)} us (${t.length})`,
  );
process.exit(0);
