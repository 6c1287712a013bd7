// What key-write.mjs and key-js.mjs share: a terminal-like stream pair over two byte sockets, as
// a checkout's link builds it (the echo's ack waits to ride the next key), and a percentile.
import { join } from 'node:path';

/** The mux of `root`'s build on each socket, and one stream between them. */
export async function keyStreams(root, nearSocket, farSocket) {
  const shared = await import(join(root, 'shared', 'dist', 'index.js'));
  const near = new shared.Mux(shared.wrapByteStream(nearSocket, { later: setImmediate }), { role: 'client' });
  const far = new shared.Mux(shared.wrapByteStream(farSocket, { later: setImmediate }), { role: 'agent' });
  const local = near.openStream();
  const remote = far.openStream({ id: local.id });
  local.ackDelayMs = 1000;
  remote.ackDelayMs = 500;
  let got = () => {};
  local.onData(() => got());
  remote.onData(() => got());
  return { root, local, remote, until: () => new Promise((r) => (got = r)) };
}

export function percentile(values, p) {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor((sorted.length - 1) * p)];
}
