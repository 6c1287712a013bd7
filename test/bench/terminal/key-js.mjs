// Our JavaScript's share of a keystroke after a pause, with no socket in the way: over a fake
// socket pair (a write is copied and delivered on the next setImmediate), the time of a
// keystroke's `stream.write(key, { now: true })` with the echo's ack riding it, and the time the
// near side takes to read the echo (its data frame and the ack riding it: the socket's 'data'
// event, delivered to the stream). With two built checkouts both are loaded in this process and
// alternated key by key (A/B under the same load), as key-write.mjs does over loopback TCP:
// `node test/bench/terminal/key-js.mjs <checkout> [<another checkout>]` (PAUSE ms between keys,
// default 50; N keys each, default 150).
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import { keyStreams, percentile } from './key-streams.mjs';

const builds = process.argv.slice(2).map((b) => resolve(b));
const PAUSE = Number(process.env.PAUSE ?? 50),
  N = Number(process.env.N ?? 150);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Where the near side's read times go while an echo is read (undefined: not recorded). */
let readTimes;
function fakePair() {
  const socket = () => Object.assign(new EventEmitter(), { writableLength: 0, end() {}, destroy() {} });
  const near = socket(),
    far = socket();
  const wire = (from, to, timed) => {
    from.write = (data, done) => {
      const copy = Buffer.from(data);
      setImmediate(() => {
        done();
        const t0 = process.hrtime.bigint();
        to.emit('data', copy);
        const t1 = process.hrtime.bigint();
        if (timed && readTimes) readTimes.push(Number(t1 - t0) / 1000);
      });
      return true;
    };
  };
  wire(near, far, false);
  wire(far, near, true);
  return [near, far];
}
async function setup(root) {
  const [nearSocket, farSocket] = fakePair();
  return keyStreams(root, nearSocket, farSocket);
}
const sides = [];
for (const b of builds) sides.push(await setup(b));
const writes = new Map(builds.map((b) => [b, []]));
const reads = new Map(builds.map((b) => [b, []]));
for (let i = 0; i < N; i++) {
  for (const s of i % 2 ? [...sides].reverse() : sides) {
    // An echo comes (with the ack of the last key riding it); its own ack waits to ride the next key.
    readTimes = i > 0 ? reads.get(s.root) : undefined;
    const echoed = s.until();
    s.remote.write(Buffer.from('a'), { now: true });
    await echoed;
    readTimes = undefined;
    await sleep(PAUSE);
    const keyIn = s.until();
    const key = Buffer.from('a');
    const t0 = process.hrtime.bigint();
    s.local.write(key, { now: true });
    const t1 = process.hrtime.bigint();
    writes.get(s.root).push(Number(t1 - t0) / 1000);
    await keyIn;
  }
}
const pct = percentile;
const fmt = (t) => `p50 ${pct(t, 0.5).toFixed(1)} us, p90 ${pct(t, 0.9).toFixed(1)} us (${t.length})`;
for (const b of builds) {
  console.log(`${b}: key write with riding ack ${fmt(writes.get(b))}`);
  console.log(`${b}: echo read with riding ack ${fmt(reads.get(b))}`);
}
process.exit(0);
