#!/usr/bin/env node
// Relayed-path benchmark (issue 13's UDP-blocked fallback): a 256 MiB download through a preview
// and keystroke echo, each through a relay splice and through the direct link in the same run,
// with the ratio. Two agents on this machine in one account (../two-hosts.mjs): "near" on loopback
// (reached directly), "far" in a network namespace behind a firewall that lets nothing in and no
// UDP out (reached only through the relay). Needs root (ip netns). Not a test: it prints numbers;
// it fails only if it breaks.
import { HangarCore } from '@hangar/desktop/core';
import { percentile, printRows } from '../support.mjs';
import { echoRows, twoHosts } from '../two-hosts.mjs';

const DOWNLOAD_MIB = Number(process.env.BENCH_MIB ?? 256);
const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 300);

/** An HTTP server answering DOWNLOAD_MIB MiB on any request. */
const ORIGIN = `const chunk = Buffer.alloc(65536, 120); require('http').createServer((q, s) => {
    s.writeHead(200, { 'content-length': String(${DOWNLOAD_MIB} * 1048576) });
    let left = ${DOWNLOAD_MIB} * 16;
    const pump = () => { while (left > 0) { left--; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
    pump();
  }).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port) })`;

async function download(port) {
  const t0 = performance.now();
  const response = await fetch(`http://localhost:${port}/`);
  let bytes = 0;
  for await (const chunk of response.body) bytes += chunk.length;
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== DOWNLOAD_MIB * 1048576) throw new Error(`downloaded ${bytes} bytes`);
  return DOWNLOAD_MIB / seconds;
}

const rows = [];
let core;
// The path's own speed, not the per-account limit (default 8 MiB/s).
const stack = await twoHosts({
  name: 'splice',
  origin: ORIGIN,
  udp: false,
  relayArgs: ['--splice-rate', String(2 ** 40)],
});
try {
  const { via, origins } = stack;
  console.error(`paths: near ${via.near}, far ${via.far}`);

  core = await HangarCore.open({ home: stack.home });
  const local = {};
  for (const name of ['near', 'far']) {
    await core.previews.add(name, origins[name]);
    local[name] = (await core.previews.open(name, origins[name])).local_port;
  }
  // Alternate the two (2 shared cores are noisy); medians.
  const rates = { near: [], far: [] };
  for (let round = 0; round < 3; round++) {
    for (const name of ['near', 'far']) rates[name].push(await download(local[name]));
  }
  const near = percentile(rates.near, 50);
  const far = percentile(rates.far, 50);
  const list = (values) => values.map((v) => v.toFixed(0)).join(', ');
  rows.push([
    `${DOWNLOAD_MIB} MiB preview download, direct link (reference)`,
    `${near.toFixed(0)} MiB/s (${list(rates.near)})`,
  ]);
  rows.push([`${DOWNLOAD_MIB} MiB preview download, relayed (splice)`, `${far.toFixed(0)} MiB/s (${list(rates.far)})`]);
  rows.push(['download ratio relayed / direct', `${(far / near).toFixed(2)}×`]);
  await core.dispose();
  core = undefined;

  rows.push(...(await echoRows(stack, KEYSTROKES, 'relayed (splice)')));
  rows.push(['paths as hangar hosts ls shows them', `near: ${via.near}, far: ${via.far}`]);
} finally {
  await core?.dispose();
  await stack.dispose();
}

printRows('\nRelayed path (splice) vs direct link, this machine, same run:', rows, '  ');
