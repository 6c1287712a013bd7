import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket, type TcpNetConnectOpts } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import {
  HangarError,
  MAX_FRAME_BYTES,
  TLS_EXPORTER_BYTES,
  TLS_EXPORTER_LABEL,
  decodeLinkMessage,
  wrapWebSocket,
  type ErrorShape,
  type FrameTransport,
} from '@hangar/shared';
import { rawPublicKey } from '../../electron/core/src/identity/device-key.js';
import { clientHandshake } from '../../electron/core/src/link/client-handshake.js';

/**
 * A peer that speaks the link protocol by hand, for tests that play an attacker: it picks its
 * source address on loopback (127.0.0.0/8 is all local on Linux), can stop reading, and sees the
 * agent's refusals exactly as sent, before the client turns them into messages of its own.
 */
export interface RawLink {
  socket: TLSSocket;
  ws: WebSocket;
  transport: FrameTransport;
  exporter: Uint8Array;
  certFingerprint: string;
  /** `link.refused` errors the agent sent, verbatim. */
  refusals: ErrorShape[];
  /** Resolves when the TCP connection is gone. */
  gone: Promise<void>;
  destroy(): void;
}

export interface Pins {
  agent_key: string;
  cert_fingerprint: string;
}

const port = (address: string) => Number(address.split(':').pop());

/** tls.connect takes socket.connect()'s options too (Node's docs); its type lists only its own. */
export type TlsFromOptions = ConnectionOptions & Pick<TcpNetConnectOpts, 'localAddress'>;

/** A TLS connection from a chosen loopback address (each address is its own peer to the agent). */
export function tlsConnectFrom(options: TlsFromOptions): TLSSocket {
  return tlsConnect(options);
}

/**
 * TLS, then the WebSocket upgrade on /link; no handshake message sent yet. `ciphers` is the TLS
 * 1.3 suites offered, in order (Node's default when not given: TLS_AES_256_GCM_SHA384 first).
 */
export async function openRawLink(
  address: string,
  localAddress = '127.0.0.1',
  timeoutMs = 10_000,
  ciphers?: string,
): Promise<RawLink> {
  const socket = tlsConnectFrom({
    host: '127.0.0.1',
    port: port(address),
    localAddress,
    minVersion: 'TLSv1.3',
    ...(ciphers ? { ciphers } : {}),
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
  });
  socket.on('error', () => undefined); // a reset by the agent shows up as 'close'
  const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const failAfter = (what: string) =>
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs));
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('close', () => reject(new Error('connection closed before TLS finished')));
      }),
      failAfter('no TLS session'),
    ]);
    const ws = new WebSocket(`wss://127.0.0.1:${port(address)}/link`, {
      createConnection: () => socket,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
    });
    ws.on('error', () => undefined);
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('close', () => reject(new Error('connection closed before the WebSocket opened')));
      }),
      failAfter('no WebSocket'),
    ]);
    const transport = wrapWebSocket(ws);
    const refusals: ErrorShape[] = [];
    // Subscribed first, so it sees every frame, including those the handshake reader consumes.
    transport.onFrame((bytes) => {
      try {
        const message = decodeLinkMessage(bytes);
        if (message.kind === 'link.refused') refusals.push(message.error);
      } catch {
        // After the handshake frames are mux frames, not handshake messages: not a refusal.
      }
    });
    return {
      socket,
      ws,
      transport,
      exporter: new Uint8Array(socket.exportKeyingMaterial(TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL, Buffer.alloc(0))),
      certFingerprint: socket.getPeerCertificate().fingerprint256,
      refusals,
      gone,
      destroy: () => socket.destroy(),
    };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

export function newDeviceKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

/** Runs the device's side of the handshake on a raw link: pair with a code, or authenticate with pins. */
export async function handshake(
  link: RawLink,
  deviceKey: KeyObject,
  mode: { code: string } | { pins: Pins },
  deviceName = 'raw-peer',
): Promise<Pins> {
  const result = await clientHandshake({
    transport: link.transport,
    exporter: link.exporter,
    certFingerprint: link.certFingerprint,
    device: { publicKey: rawPublicKey(deviceKey), sign: (m) => new Uint8Array(sign(null, m, deviceKey)) },
    deviceName,
    host: { name: 'raw', address: `127.0.0.1:${link.socket.remotePort}` },
    mode:
      'code' in mode
        ? { kind: 'pair', code: mode.code.replace('-', '') }
        : {
            kind: 'auth',
            agentKey: mode.pins.agent_key,
            keyChanged: (seen) => new HangarError('E_AUTH_HOST_KEY_CHANGED', `agent presented key ${seen}`),
          },
  });
  return { agent_key: result.agentKey, cert_fingerprint: link.certFingerprint };
}

/**
 * Opens `count` plain TCP connections that never send a byte, spread round-robin over
 * `sources` local addresses. Resolves once each is connected or was refused.
 */
export async function openIdleConnections(address: string, count: number, sources: string[]): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const connecting: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const socket = netConnect({ host: '127.0.0.1', port: port(address), localAddress: sources[i % sources.length] });
    socket.on('error', () => undefined); // reset by the agent: what the flood is for
    sockets.push(socket);
    connecting.push(
      new Promise<void>((resolve) => {
        socket.once('connect', () => resolve());
        socket.once('close', () => resolve());
      }),
    );
  }
  await Promise.all(connecting);
  return sockets;
}

/**
 * Upgrades to a WebSocket by hand and sends the header of a binary frame of `frameBytes` plus
 * all but the last byte of its payload: a receiver that waits for whole frames buffers it all.
 */
export async function sendUnfinishedFrame(
  address: string,
  frameBytes: number,
  localAddress = '127.0.0.1',
): Promise<TLSSocket> {
  const socket = tlsConnectFrom({
    host: '127.0.0.1',
    port: port(address),
    localAddress,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('close', () => reject(new Error('closed before TLS finished')));
  });
  socket.write(
    'GET /link HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      // Whatever else the agent says is not needed, but reading on is how a close is seen.
      socket.off('data', onData);
      socket.resume();
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the upgrade')));
  });
  // FIN + binary opcode, MASK + 64-bit length, a zero masking key (valid: XOR with zeros).
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(frameBytes), 2);
  socket.write(header);
  socket.write(Buffer.alloc(frameBytes - 1, 0x41));
  return socket;
}

/** Resident memory of a process, from /proc/<pid>/status: now, and the peak since resetPeak(). */
export function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** proc(5) clear_refs: writing 5 resets the peak resident set size (VmHWM) to the current one. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Polls until `check` holds; throws after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
