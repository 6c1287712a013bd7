'use strict';
/**
 * Preloaded (`NODE_OPTIONS=--require …`) into an agent or a `hangar` command by
 * test/e2e/without-node-internals.test.ts: takes away the three Node internals Hangar uses where
 * present, so their portable fallbacks run (a Node or Electron whose internals differ):
 *  - `process.binding('stream_wrap')` throws (shared/src/link/handle-writes.ts: spliced sockets
 *    are written with socket.write);
 *  - an InflateRaw made by `zlib.createInflateRaw` has no `_handle.writeSync`
 *    (electron/core/src/jobs/log-blocks.ts: blocks inflate with inflateRawSync);
 *  - an accepted socket's handle has no `useUserBuffer` (electron/core/src/previews/
 *    accepted-reads.ts: the socket reads as sockets do, 'data').
 * Each time one is taken away it is counted; the counts are appended as a JSON line to the file
 * $HANGAR_TEST_INTERNALS_LOG at exit, so the test can see the fallbacks were reached.
 */
const { appendFileSync } = require('node:fs');
const net = require('node:net');
const zlib = require('node:zlib');
const { syncBuiltinESMExports } = require('node:module');

const counts = { streamWrap: 0, inflate: 0, accepted: 0 };

const binding = process.binding;
process.binding = function (name) {
  if (name === 'stream_wrap') {
    counts.streamWrap++;
    throw new Error('process.binding("stream_wrap") taken away by without-node-internals.cjs');
  }
  return binding.call(this, name);
};

// Read-only but configurable, as Node defines its create* functions.
const createInflateRaw = zlib.createInflateRaw;
Object.defineProperty(zlib, 'createInflateRaw', {
  ...Object.getOwnPropertyDescriptor(zlib, 'createInflateRaw'),
  value: function (...args) {
    const stream = createInflateRaw.apply(this, args);
    if (stream._handle) {
      stream._handle.writeSync = undefined;
      counts.inflate++;
    }
    return stream;
  },
});

const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function (event, socket, ...rest) {
  if (event === 'connection' && socket && socket._handle) {
    socket._handle.useUserBuffer = undefined;
    counts.accepted++;
  }
  return emit.call(this, event, socket, ...rest);
};

// ESM imports of node:zlib (the core's) see the replaced createInflateRaw.
syncBuiltinESMExports();

process.on('exit', () => {
  const file = process.env.HANGAR_TEST_INTERNALS_LOG;
  if (file)
    appendFileSync(file, JSON.stringify({ pid: process.pid, argv: process.argv.slice(2, 4), ...counts }) + '\n');
});
