import type { KeyObject } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import {
  HangarError,
  LeasedReads,
  MAX_FRAME_BYTES,
  ReadBufferPool,
  TLS_EXPORTER_BYTES,
  TLS_EXPORTER_LABEL,
  LINK_TLS_CIPHERS,
  normalizePairingCode,
  RAW_LINK_ALPN,
  parseHostAddress,
  refusedMessage,
  toHangarError,
  wrapByteStream,
  wrapWebSocket,
  type FrameTransport,
  type HostInfo,
} from '@hangar/shared';
import { deviceSigner } from '../identity/device-key.js';
import { clientHandshake, withDeadline } from './client-handshake.js';

export interface ConnectOptions {
  /** `host:port` */
  address: string;
  /** The device's Ed25519 private key; it only ever signs locally. */
  deviceKey: KeyObject;
  deviceName: string;
  /** What was pinned at pairing; absent means pair mode, which needs pairingCode or enrollment. */
  pinned?: { agent_key: string; cert_fingerprint: string };
  pairingCode?: string;
  /**
   * The first link to a host enrolled with a token this device made: the token id and the
   * end-to-end secret `e` it kept (relay/PROTOCOL.md step 4). Pairs like a code, keyed by `e`.
   */
  enrollment?: { token_id: string; secret: string };
  /**
   * With `enrollment`: the certificate (colon form) the host's record at the relay lists. A machine
   * presenting another one is not that host, and is sent nothing (E_AUTH_HOST_KEY_CHANGED).
   */
  expectCertificate?: string;
  /** The user's name for the host, used in messages ("mini"). */
  hostName?: string;
  /**
   * Where the link's TLS runs, when not a TCP connection to `address`: a byte stream someone else
   * carries (a relay splice). `address` then only names the path in messages.
   */
  carrier?: (timeoutMs: number) => Promise<Duplex>;
  timeoutMs?: number;
}

export interface ConnectedHost {
  transport: FrameTransport;
  /**
   * On a TLS link, how the frames travel: straight on TLS (RAW_LINK_ALPN), or in a WebSocket
   * (older agents). Absent on a WebRTC link (a data channel). Not to be confused with
   * ConnectOptions.carrier, the socket a relay splice hands the TLS link to run over.
   */
  carrier?: 'tls' | 'websocket';
  /**
   * The agent's IP address and port this link's TCP connection reached, when the link is a TCP
   * connection of ours to the host (not a relay splice, not WebRTC): where its lanes go
   * (lane/PROTOCOL.md, "Where lanes run").
   */
  tcp?: { host: string; port: number };
  agent_key: string;
  cert_fingerprint: string;
  host: HostInfo;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/**
 * Set to 1, links use the WebSocket even with agents that offer the raw link: for benchmarks
 * that compare the two in one run, and to rule the raw link out when something looks wrong.
 */
export const LINK_WEBSOCKET_ENV = 'HANGAR_LINK_WEBSOCKET';

/**
 * The buffers this process's links read into (LeasedReads): TLS hands over at most one 16 KiB
 * record per read. A buffer goes round again once what came in it is done with (a preview's bytes
 * once the browser's socket has taken them, a job log's or an artifact's once written out). The
 * spares are bounded by a bulk stream's window and a little more (5 MiB): an artifact's file
 * writes hold up to a window of reads at a time, all given back together, and with 2 MiB of spares
 * a fifth of its reads came in fresh buffers (8,300 of 39,000 for 200 MB).
 */
const LINK_READ_BUFFERS = new ReadBufferPool(16 * 1024, 320);

/**
 * Opens TLS to the agent, checks pins, and runs the signed handshake bound to the TLS session.
 * The link's frames go straight on TLS when the agent chose RAW_LINK_ALPN, else over a WebSocket
 * on `wss://address/link` (agents from before the raw link).
 */
export async function connectToHost(options: ConnectOptions): Promise<ConnectedHost> {
  // Over a carrier, the URL's host only fills the Host header, which the agent does not read.
  const target = options.carrier ? { host: 'link.invalid', port: 443 } : parseHostAddress(options.address);
  if (target === undefined)
    throw new HangarError('E_BAD_REQUEST', `"${options.address}" is not a host address; expected host:port`);
  const enrollment = options.pinned ? undefined : options.enrollment;
  if (enrollment !== undefined) checkEnrollment(enrollment);
  const code = options.pinned || enrollment ? undefined : normalizePairingCode(options.pairingCode ?? '');
  if (!options.pinned && !enrollment && code === undefined) {
    throw new HangarError(
      'E_BAD_REQUEST',
      options.pairingCode === undefined
        ? 'pairing needs the code that `hangar-agent pair` prints on the host (--code 123-456)'
        : `"${options.pairingCode}" is not a pairing code; it is six digits like 123-456, printed by \`hangar-agent pair\``,
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const name = options.hostName ?? '<name>';
  const deadline = Date.now() + timeoutMs;

  const { socket, reads } = await openTls(target, options.address, timeoutMs, options.carrier);
  let transport: FrameTransport | undefined;
  try {
    const seen = socket.getPeerCertificate().fingerprint256;
    // Checked before a single byte of ours is sent over this TLS session.
    if (options.pinned && seen.toUpperCase() !== options.pinned.cert_fingerprint.toUpperCase()) {
      throw keyChanged(name, options.address, 'TLS certificate', seen, options.pinned.cert_fingerprint);
    }
    if (enrollment && options.expectCertificate && seen.toUpperCase() !== options.expectCertificate.toUpperCase()) {
      throw new HangarError(
        'E_AUTH_HOST_KEY_CHANGED',
        `the machine at ${options.address} is not the "${name}" the relay describes (its TLS certificate ${seen} is not ` +
          `the listed ${options.expectCertificate}): the relay may be compromised, another machine may hold that address, ` +
          'or the host was reinstalled (enroll it again). Nothing was sent to it',
        { seen, expected: options.expectCertificate },
      );
    }
    const exporter = new Uint8Array(
      socket.exportKeyingMaterial(TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL, Buffer.alloc(0)),
    );
    if (socket.alpnProtocol === RAW_LINK_ALPN) {
      socket.setNoDelay(true);
      transport = wrapByteStream(socket, { later: setImmediate }, reads);
    } else {
      // An agent from before the raw link: the WebSocket reads the socket's 'data' events.
      reads?.attach((chunk) => socket.emit('data', Buffer.from(chunk)));
      const ws = await openWebSocket(socket, target, options.address, deadline - Date.now());
      transport = wrapWebSocket(ws, { socket, later: setImmediate });
    }
    const pinned = options.pinned;
    const handshake = clientHandshake({
      transport,
      exporter,
      certFingerprint: seen,
      device: deviceSigner(options.deviceKey),
      deviceName: options.deviceName,
      mode: pinned
        ? {
            kind: 'auth',
            agentKey: pinned.agent_key,
            keyChanged: (key) => keyChanged(name, options.address, 'key', key, pinned.agent_key),
          }
        : enrollment
          ? { kind: 'pair', enrollment }
          : { kind: 'pair', code: code! },
      host: { name, address: options.address },
    });
    const { agentKey, host } = await withDeadline(
      handshake,
      deadline,
      `host at ${options.address} accepted the connection but did not finish the handshake in time`,
    );
    const remote = options.carrier ? undefined : { host: socket.remoteAddress, port: socket.remotePort };
    return {
      transport,
      carrier: socket.alpnProtocol === RAW_LINK_ALPN ? 'tls' : 'websocket',
      ...(remote?.host !== undefined && remote.port !== undefined
        ? { tcp: { host: remote.host, port: remote.port } }
        : {}),
      agent_key: agentKey,
      cert_fingerprint: seen,
      host,
    };
  } catch (error) {
    const failure = toHangarError(error);
    if (transport && !transport.closed) {
      // Tell the agent why (it logs it); refusals it sent us need no echo.
      if (
        ![
          'E_AUTH_BAD_CODE',
          'E_AUTH_CODE_USED',
          'E_AUTH_CODE_EXPIRED',
          'E_AUTH_NO_CODE',
          'E_AUTH_RATE_LIMITED',
          'E_AUTH_UNKNOWN_DEVICE',
        ].includes(failure.code)
      ) {
        transport.send(refusedMessage(failure));
      }
      transport.close({ code: failure.code, message: 'handshake failed' });
    }
    socket.destroy();
    throw failure;
  }
}

/** An enrollment's id and secret, checked before they key anything (≥ 128 bits: 32 bytes here). */
function checkEnrollment(enrollment: { token_id: string; secret: string }): void {
  if (!/^tok_[0-9a-f]{32}$/.test(enrollment.token_id)) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `enrollment.token_id "${enrollment.token_id}" is not a token id (tok_ and 32 hex digits)`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(enrollment.secret)) {
    throw new HangarError(
      'E_BAD_REQUEST',
      'enrollment.secret must be the 32 bytes (64 lowercase hex digits) kept for the token',
    );
  }
}

function keyChanged(name: string, address: string, what: string, seen: string, expected: string): HangarError {
  return new HangarError(
    'E_AUTH_HOST_KEY_CHANGED',
    `host "${name}" at ${address} presented a different ${what} than when it was paired ` +
      `(seen ${seen}, expected ${expected}). Someone may be intercepting the connection, or the host was reinstalled. ` +
      `If it was reinstalled, run \`hangar-agent pair\` on it, then: hangar hosts rm ${name} && hangar hosts add ${name} ${address} --code <code>`,
    { seen, expected },
  );
}

function unreachable(address: string, why: string): HangarError {
  return new HangarError(
    'E_HOST_UNREACHABLE',
    `could not reach host at ${address} (${why}); check that hangar-agent is running there, that the address and port are right, ` +
      'and that this machine can reach it (Tailscale up, same LAN, no firewall in the way)',
    { address, reason: why },
  );
}

async function openTls(
  target: { host: string; port: number },
  address: string,
  timeoutMs: number,
  carrier?: (timeoutMs: number) => Promise<Duplex>,
): Promise<{ socket: TLSSocket; reads: LeasedReads | undefined }> {
  const started = Date.now();
  const carried = carrier ? await carrier(timeoutMs) : undefined;
  const left = Math.max(1, timeoutMs - (Date.now() - started));
  const websocket = process.env[LINK_WEBSOCKET_ENV] === '1';
  // Node reads a carried socket itself (tls.connect ignores onread with `socket`).
  const reads = carried || websocket ? undefined : new LeasedReads(LINK_READ_BUFFERS);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      ...(carried ? { socket: carried } : { host: target.host, port: target.port }),
      // SNI must not carry an IP address (RFC 6066 §3).
      ...(isIP(target.host) === 0 && !carried ? { servername: target.host } : {}),
      minVersion: 'TLSv1.3',
      // Offered in the link's order (shared/src/link/tls-suites.ts); the agent's order decides.
      ciphers: LINK_TLS_CIPHERS,
      // The certificate is self-signed: trust comes from the pin (auth) or the PAKE (pair).
      rejectUnauthorized: false,
      ALPNProtocols: websocket ? ['http/1.1'] : [RAW_LINK_ALPN, 'http/1.1'],
      ...(reads ? { onread: reads.onread } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(unreachable(address, `no TLS connection within ${timeoutMs} ms`));
    }, left);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      // Later errors surface through the WebSocket; keep one listener so none is unhandled.
      socket.on('error', () => undefined);
      resolve({ socket, reads });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(unreachable(address, error.code ?? error.message));
    });
  });
}

function openWebSocket(
  socket: TLSSocket,
  target: { host: string; port: number },
  address: string,
  timeoutMs: number,
): Promise<WebSocket> {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${host}:${target.port}/link`, {
      createConnection: () => socket,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: Math.max(1, timeoutMs),
    });
    ws.once('open', () => {
      ws.removeAllListeners('unexpected-response');
      resolve(ws);
    });
    // Stays attached after open: later errors end in 'close', which the transport reports.
    ws.on('error', (error) => reject(unreachable(address, `WebSocket: ${error.message}`)));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      reject(unreachable(address, `HTTP ${res.statusCode} on /link; is that port a hangar-agent?`));
    });
  });
}
