import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  MAX_FRAME_BYTES,
  RAW_LINK_ALPN,
  TLS_EXPORTER_BYTES,
  TLS_EXPORTER_LABEL,
  LINK_TLS_CIPHERS,
  refusedMessage,
  toHangarError,
  wrapByteStream,
  wrapWebSocket,
  type Disposable,
  type FrameTransport,
  type HostInfo,
} from '@hangar/shared';
import { loadOrCreateAgentKey } from '../identity/keys.js';
import { loadOrCreateTlsCert } from '../identity/tls.js';
import type { AgentStore } from '../store/db.js';
import { DEFAULT_PENDING_LIMITS, PendingConnections, type PendingLimits } from './pending-connections.js';
import { startsLikeLane, type LaneAcceptor } from './lanes.js';
import { PerSourceBuckets } from './rate-limit.js';
import { serverHandshake, type HandshakeDevice } from './server-handshake.js';

export interface AuthenticatedLink {
  transport: FrameTransport;
  device: { public_key: string; name: string };
  remoteAddress: string;
  /** How the device got in: pinned before, or pinned by this handshake (a code, an enrollment). */
  via: HandshakeDevice['via'];
}

export interface LinkServerOptions {
  host: string;
  port: number;
  dataDir: string;
  store: AgentStore;
  hostInfo: () => HostInfo;
  logger: Logger;
  onLink: (link: AuthenticatedLink) => void;
  /** Injected clock for pairing-code expiry and rate limits (tests). */
  now?: () => number;
  handshakeTimeoutMs?: number;
  /** Pairing attempts per source address: burst and refill per second. */
  pairRateLimit?: { burst: number; perSecond: number };
  /** Caps on connections that have not authenticated (tests lower them). */
  pendingLimits?: Partial<PendingLimits>;
  /** Takes the connections that start with a lane's preface (lane/PROTOCOL.md); without it, or without its native relay, the port looks for no lanes (TLS drops a preface). */
  lanes?: LaneAcceptor;
}

/**
 * A link handshake, a TLS handshake, or an HTTP request's headers that have not arrived in this
 * long are dropped: a device on any working network needs well under a second for each, and a
 * peer that dawdles holds a descriptor (slowloris).
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
export const LINK_PATH = '/link';

/**
 * Accepts links: TLS 1.3 only, with the agent's pinned self-signed certificate, carrying either
 * the link's frames straight on TLS (ALPN RAW_LINK_ALPN, what the app's core offers first) or a
 * WebSocket on /link over HTTPS (ALPN http/1.1 or none: older cores, anything browser-like).
 * Each connection runs the signed handshake bound to its TLS session; only then is it handed to
 * onLink.
 */
export class LinkServer implements Disposable {
  private readonly sockets = new Set<WebSocket>();
  private readonly rawSockets = new Set<TLSSocket>();
  /** Every connection the port accepted and that is still open (links, lanes, strangers). */
  private readonly frontSockets = new Set<Socket>();

  private constructor(
    private readonly front: NetServer,
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    private readonly pending: PendingConnections,
    private readonly deps: {
      options: LinkServerOptions;
      agentKey: Awaited<ReturnType<typeof loadOrCreateAgentKey>>;
      certFingerprint: string;
      now: () => number;
      pairBuckets: PerSourceBuckets;
      log: Logger;
    },
  ) {}

  /**
   * A link that arrived another way (a WebRTC data channel): the same signed handshake, bound to
   * `exporter` (there: both DTLS fingerprints), then onLink. `source` keys the pairing rate limit.
   * Settles once the handshake is over (authenticated, refused or timed out): until then the caller
   * counts it as a connection that has not authenticated.
   */
  accept(link: {
    transport: FrameTransport;
    exporter: Uint8Array;
    remoteAddress: string;
    source: string;
    /** Called once the handshake let the device in (the caller lifts its pre-authentication limits). */
    authenticated?: () => void;
  }): Promise<void> {
    const timer = setTimeout(() => {
      this.deps.log.info({ remoteAddress: link.remoteAddress }, 'handshake timed out');
      link.transport.close({ code: 'E_TIMEOUT', message: 'handshake timed out' });
    }, this.deps.options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    return this.handshake({
      transport: link.transport,
      exporter: link.exporter,
      remoteAddress: link.remoteAddress,
      takePairingAttempt: () => this.deps.pairBuckets.take(link.source),
      timer,
      authenticated: () => link.authenticated?.(),
    });
  }

  private handshake(h: {
    transport: FrameTransport;
    exporter: Uint8Array;
    remoteAddress: string;
    takePairingAttempt: () => ReturnType<PerSourceBuckets['take']>;
    timer: ReturnType<typeof setTimeout>;
    authenticated: () => void;
  }): Promise<void> {
    const { options, log } = this.deps;
    const { transport, remoteAddress, timer } = h;
    return serverHandshake({
      transport,
      exporter: h.exporter,
      certFingerprint: this.deps.certFingerprint,
      agentKey: this.deps.agentKey.signer,
      store: options.store,
      hostInfo: options.hostInfo,
      now: this.deps.now,
      takePairingAttempt: h.takePairingAttempt,
    }).then(
      ({ via, ...device }) => {
        clearTimeout(timer);
        h.authenticated();
        log.info({ remoteAddress, device: device.name, via }, 'link authenticated');
        options.onLink({ transport, device, remoteAddress, via });
      },
      (error: unknown) => {
        clearTimeout(timer);
        const refusal = toHangarError(error);
        if (refusal.code === 'E_INTERNAL') log.error({ err: error, remoteAddress }, 'handshake failed');
        else log.info({ remoteAddress, code: refusal.code }, 'handshake refused');
        if (!transport.closed) {
          transport.send(refusedMessage(refusal));
          transport.close({ code: refusal.code, message: 'handshake refused' });
        }
      },
    );
  }

  static async listen(options: LinkServerOptions): Promise<LinkServer> {
    const [agentKey, tls] = await Promise.all([
      loadOrCreateAgentKey(options.dataDir),
      loadOrCreateTlsCert(options.dataDir),
    ]);
    const now = options.now ?? Date.now;
    const rate = options.pairRateLimit ?? { burst: 3, perSecond: 1 };
    const pairBuckets = new PerSourceBuckets(rate, now);
    // The composition root names the component (agent.ts gives this logger component: 'link').
    const log = options.logger;
    const pending = new PendingConnections({ ...DEFAULT_PENDING_LIMITS, ...options.pendingLimits }, log);

    const server = createServer(
      {
        cert: tls.cert,
        key: tls.key,
        // RFC 8446 only: the exporter binding relies on TLS 1.3's exporter (RFC 8446 §7.5).
        minVersion: 'TLSv1.3',
        // AES-128-GCM first (shared/src/link/tls-suites.ts); this server's order is what links get.
        ciphers: LINK_TLS_CIPHERS,
        honorCipherOrder: true,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        headersTimeout: HANDSHAKE_TIMEOUT_MS,
        requestTimeout: HANDSHAKE_TIMEOUT_MS,
        // How often Node looks for requests past those timeouts (default 30 s: a late drop). It
        // looks from the start, connections or not: every second was an idle agent's most frequent
        // wake-up. Every 2 s, a stalled request still goes within 12 s (link-unpaired-flood.test).
        connectionsCheckingInterval: HANDSHAKE_TIMEOUT_MS / 5,
        // Server preference: the raw link when the client offers it, else HTTP for the WebSocket.
        ALPNProtocols: [RAW_LINK_ALPN, 'http/1.1'],
      },
      (_req, res) => {
        res.writeHead(404).end();
      },
    );
    // Before TLS sees the socket: counted from accept on, so idle TCP connections count too.
    server.prependListener('connection', (socket: Socket) => pending.admit(socket));
    server.on('tlsClientError', (error) => log.debug({ err: error.message }, 'TLS handshake failed'));
    server.on('clientError', (error, socket) => {
      log.debug({ err: error.message }, 'bad HTTP request');
      socket.destroy();
    });
    // maxPayload is the authenticated link's frame limit; before that, PendingConnections allows
    // far less. ws answers pings itself and drops a peer with over 60 unanswered (maxPendingAutoPongs).
    const wss = new WebSocketServer({ server, path: LINK_PATH, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    wss.on('error', (error) => log.warn({ err: error.message }, 'link server error'));
    // The port's listener: each connection's first 8 bytes say what it is. "HGLANE/1" is a lane
    // (lane/PROTOCOL.md); anything else (a TLS ClientHello starts 0x16) goes to the HTTPS server.
    // The bytes are looked at where they lie (MSG_PEEK), not read: the TLS server gets a socket
    // nothing has read, as when it listened itself (a socket read in JavaScript and its bytes put
    // back made TLS read a flooding peer so that the agent's memory grew by 100 MB:
    // link-slow-reader.test). With no native relay there are no lanes: straight to TLS. Both are
    // counted as pending from accept on.
    const native =
      options.lanes !== undefined && !('unavailable' in options.lanes.native) ? options.lanes.native : undefined;
    const front = createNetServer({ pauseOnConnect: true }, (socket) => {
      linkServer.frontSockets.add(socket);
      socket.once('close', () => linkServer.frontSockets.delete(socket));
      pending.admit(socket);
      if (socket.destroyed) return;
      const descriptor = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
      if (native === undefined || typeof descriptor !== 'number' || descriptor < 0) {
        server.emit('connection', socket);
        return;
      }
      const onError = (error: Error) => log.debug({ err: error.message }, 'connection error before its first bytes');
      socket.on('error', onError);
      let timer: NodeJS.Timeout | undefined;
      // A peer that says nothing goes as one that stalls its TLS handshake would (handshakeTimeout).
      const silent = setTimeout(() => {
        log.debug({ remoteAddress: socket.remoteAddress }, 'dropped a connection that sent nothing');
        socket.destroy();
      }, HANDSHAKE_TIMEOUT_MS);
      socket.once('close', () => {
        clearTimeout(silent);
        clearTimeout(timer);
      });
      /** Looks again after 1, 2, 4 … 50 ms while nothing (or a part of the preface) has come. */
      let wait = 0;
      const look = () => {
        if (socket.destroyed) return;
        let seen: Buffer | null;
        try {
          seen = native.peek(descriptor, 8);
        } catch (error) {
          log.debug({ err: (error as Error).message }, 'could not look at a connection');
          socket.destroy();
          return;
        }
        if (seen === null) {
          socket.destroy(); // gone before a byte
          return;
        }
        if (seen.length === 0 || (seen.length < 8 && startsLikeLane(seen))) {
          wait = Math.min(wait === 0 ? 1 : wait * 2, 50);
          timer = setTimeout(look, wait);
          return;
        }
        clearTimeout(silent);
        socket.off('error', onError);
        if (startsLikeLane(seen)) {
          options.lanes!.accept(socket, Buffer.alloc(0), () => pending.claim(socket)?.authenticated());
          socket.resume();
          return;
        }
        server.emit('connection', socket);
      };
      look();
    });
    const linkServer = new LinkServer(front, server, wss, pending, {
      options,
      agentKey,
      certFingerprint: tls.fingerprint,
      now,
      pairBuckets,
      log,
    });

    /**
     * Runs the handshake on a transport whose TLS socket was admitted as pending; `terminate`
     * drops the connection without ceremony, `sayTooMuch` tells the peer it sent too much.
     */
    const authenticate = (
      transport: FrameTransport,
      socket: TLSSocket,
      terminate: () => void,
      sayTooMuch: () => void,
    ) => {
      const remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      const admitted = pending.claim(socket);
      if (admitted === undefined) {
        terminate(); // dropped for a newer connection, or timed out, during the upgrade
        return;
      }
      admitted.limitBytes(socket, (bytes) => {
        log.debug({ remoteAddress, bytes }, 'dropped a peer that sent too much before authenticating');
        // Read no more of it, say why, and go once that is written (or at the deadline).
        socket.pause();
        sayTooMuch();
        socket.end(() => socket.destroy());
      });
      const timer = setTimeout(() => {
        log.info({ remoteAddress }, 'handshake timed out');
        terminate();
      }, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
      let exporter: Uint8Array;
      try {
        exporter = new Uint8Array(socket.exportKeyingMaterial(TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL, Buffer.alloc(0)));
      } catch (error) {
        // The peer vanished between upgrade and here; throwing in this handler would kill the agent.
        clearTimeout(timer);
        log.debug({ err: (error as Error).message, remoteAddress }, 'no TLS exporter; dropping');
        terminate();
        return;
      }
      void linkServer.handshake({
        transport,
        exporter,
        remoteAddress,
        takePairingAttempt: () => pairBuckets.take(admitted.source),
        timer,
        authenticated: () => admitted.authenticated(),
      });
    };

    wss.on('connection', (ws, req) => {
      linkServer.sockets.add(ws);
      ws.on('close', () => linkServer.sockets.delete(ws));
      // Without a listener an 'error' (oversized frame, reset) would crash the agent.
      ws.on('error', (error) => log.debug({ err: error.message }, 'link socket error'));
      const socket = req.socket as TLSSocket;
      authenticate(
        wrapWebSocket(ws, { socket, later: setImmediate }),
        socket,
        () => ws.terminate(),
        () => ws.close(1009, 'too much data before authentication'),
      );
    });

    // The HTTP server's own listener takes the connections that chose http/1.1 (or no ALPN);
    // the raw link's connections never reach its parser.
    const httpListeners = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
    server.removeAllListeners('secureConnection');
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol !== RAW_LINK_ALPN) {
        for (const listener of httpListeners) listener.call(server, socket);
        return;
      }
      linkServer.rawSockets.add(socket);
      socket.on('close', () => linkServer.rawSockets.delete(socket));
      socket.on('error', (error) => log.debug({ err: error.message }, 'link socket error'));
      socket.setNoDelay(true);
      const transport = wrapByteStream(socket, { later: setImmediate });
      authenticate(
        transport,
        socket,
        () => socket.destroy(),
        () => transport.close({ code: 'E_PROTOCOL', message: 'too much data before authentication' }),
      );
    });

    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.listen(options.port, options.host, () => {
        front.off('error', reject);
        resolve();
      });
    });
    // The HTTPS server never listens itself (the front hands it its connections), yet its checks of
    // headersTimeout and requestTimeout start on 'listening' (Node's setupConnectionsTracking).
    server.emit('listening');
    front.on('error', (error) => log.error({ err: error.message }, 'link server error'));
    server.on('error', (error) => log.error({ err: error.message }, 'link server error'));
    log.info(
      { address: front.address(), agent_key: agentKey.publicKeyHex, cert: tls.fingerprint },
      'link server listening',
    );
    return linkServer;
  }

  /**
   * Serves a link on a connection this agent opened itself (a relay splice: PROTOCOL.md "Relayed
   * links") exactly as on one it accepted: the same pending-connection limits, TLS with this
   * host's certificate, the WebSocket upgrade and the signed handshake bound to that TLS session.
   * Node's HTTP server documents injecting any duplex this way ('connection'); the relay at the
   * other end of the socket therefore carries only TLS records.
   */
  acceptSpliced(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  address(): { host: string; port: number } {
    const info = this.front.address() as AddressInfo;
    return { host: info.address, port: info.port };
  }

  async dispose(): Promise<void> {
    this.pending.dispose();
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    for (const socket of this.rawSockets) socket.destroy();
    this.rawSockets.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.frontSockets) socket.destroy();
    // Stops its connection checks; it never listened, so its callback only says so.
    this.server.close(() => undefined);
    // The HTTPS server never listened itself (the front server hands it connections): only the front closes.
    await new Promise<void>((resolve) => this.front.close(() => resolve()));
  }
}
