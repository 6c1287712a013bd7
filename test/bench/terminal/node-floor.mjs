// The floor for Node on the keystroke path (issue 17): the least two Node processes can do for the
// job hangar attach and the agent do, measured beside them (keys-only.mjs, BENCH_FLOOR=1). A
// client puts its terminal in raw mode and relays it over one TLS 1.3 connection on loopback (or
// plain TCP) to a server that runs `tmux attach` in a pty (node-pty, input written to the master
// from the loop as the agent's PtyInput does) and relays its output back. No framing, no streams,
// no acks: what is left is two Node event loops, their TLS and the pty.
//
//   node node-floor.mjs server <tls|tcp> <dir> <tmux socket> <tmux session>   (prints its port)
//   node node-floor.mjs client <tls|tcp> <dir> <port>
import { writeFileSync, writeSync } from 'node:fs';
import { createServer as createTcpServer, connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import pty from 'node-pty';
import { selfSignedCertificate } from '../../support/self-signed.mjs';
// The link's own suite order (the build's), so the floor's TLS costs what the link's does.
import { LINK_TLS_CIPHERS } from '../../../shared/dist/link/tls-suites.js';

const [role, kind, dir, ...rest] = process.argv.slice(2);
const tls = kind === 'tls';

// HANGAR_TRACE_KEYS=<dir>: the same hops as hangar attach and the agent stamp (hops.mjs), named
// `<kind>-floor.cli.*` and `<kind>-floor.agent.*`, written at exit.
const traceDir = process.env.HANGAR_TRACE_KEYS;
const events = [];
const stamp = traceDir
  ? (hop) => events.push(`${(Number(process.hrtime.bigint()) / 1e6).toFixed(4)} ${kind}-floor.${hop} 0`)
  : () => {};
if (traceDir) {
  process.on('exit', () =>
    writeFileSync(join(traceDir, `floor-${role}-${process.pid}.trace`), events.join('\n') + '\n'),
  );
  process.on('SIGTERM', () => process.exit(0));
}

/** The floor's certificate in dir (made once per run; the client trusts it as its CA). */
function floorCertificate(dir) {
  return selfSignedCertificate(dir, { name: 'floor', commonName: 'floor' });
}

if (role === 'server') {
  const [socket, session] = rest;
  const onConnection = (conn) => {
    conn.setNoDelay(true);
    const term = pty.spawn('tmux', ['-u', '-L', socket, 'attach', '-t', `=${session}`], {
      name: 'xterm-256color',
      cols: 120,
      rows: 40,
      env: { ...process.env, TERM: 'xterm-256color' },
      encoding: null,
    });
    term.onData((data) => {
      stamp('agent.pty.read');
      conn.write(data);
      stamp('agent.link.flushed');
    });
    conn.on('data', (data) => {
      stamp('agent.link.read');
      writeSync(term.fd, data);
      stamp('agent.pty.written');
    });
    conn.on('close', () => term.kill());
    conn.on('error', () => term.kill());
    term.onExit(() => conn.destroy());
  };
  const server = tls
    ? createTlsServer(
        { ...floorCertificate(dir), minVersion: 'TLSv1.3', ciphers: LINK_TLS_CIPHERS, honorCipherOrder: true },
        onConnection,
      )
    : createTcpServer(onConnection);
  server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
} else if (role === 'client') {
  const [port] = rest;
  const options = { host: '127.0.0.1', port: Number(port) };
  const conn = tls
    ? connectTls({
        ...options,
        ca: floorCertificate(dir).cert,
        servername: 'floor',
        minVersion: 'TLSv1.3',
        ciphers: LINK_TLS_CIPHERS,
      })
    : connectTcp(options);
  conn.setNoDelay(true);
  process.stdin.setRawMode(true);
  process.stdin.on('data', (data) => {
    // Ctrl-] ends it, as it detaches hangar attach.
    if (data.includes(0x1d)) process.exit(0);
    stamp('cli.stdin');
    conn.write(data);
    stamp('cli.link.flushed');
  });
  conn.on('data', (data) => {
    stamp('cli.link.read');
    process.stdout.write(data);
    stamp('cli.stdout.written');
  });
  conn.on('close', () => process.exit(0));
}
