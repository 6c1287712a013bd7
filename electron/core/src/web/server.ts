import {
  HangarError,
  chooseUiProtocol,
  keyTrace,
  uiWebSocketOptions,
  wrapWebSocket,
  type Disposable,
  type MuxOptions,
} from '@hangar/shared';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { CoreApiServer } from '../api/index.js';
import type { HangarCore } from '../core.js';
import { nodePlatform, type Platform } from '../platform.js';
import { checkHost, checkOrigin, checkToken, contentSecurityPolicy, newLaunchSecret, type Refusal } from './guard.js';
import { smallFramesInOneWrite } from './small-frames.js';
import { send, serveStatic } from './static-files.js';

export interface WebServerOptions {
  core: HangarCore;
  /** 0 (default): any free port. */
  port?: number;
  /** The built renderer; default renderer/dist of this checkout. */
  staticDir?: string;
  platform?: Platform;
  logger?: Logger;
  /** For tests (heartbeat timing); the UI side uses the defaults. */
  muxOptions?: Omit<MuxOptions, 'role'>;
}

/** Same depth from src/web and dist/web: electron/core/<src|dist>/web → the repository root. */
const DEFAULT_STATIC_DIR = fileURLToPath(new URL('../../../../renderer/dist/', import.meta.url));
export const API_PATH = '/api';
/** One link frame is at most a 32 KiB data chunk plus its header; anything far larger is hostile. */
const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * HANGAR_TRACE_KEYS: when the page's bytes reach this process (apart from when the link has them),
 * and when a message to the page goes to its socket and has been written (`ws` corks a frame's
 * head and body: the write is the uncork's). The stamp before the write is the path's: the write
 * wakes Chromium's network process, which may take this CPU before the write returns.
 */
function traceWebSocketBytes(socket: Duplex): void {
  socket.prependListener('data', (chunk: Buffer) => keyTrace?.('core.ws.read', chunk.length));
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  const uncork = socket.uncork.bind(socket);
  socket.write = ((...args: unknown[]) => {
    const corked = socket.writableCorked > 0;
    if (!corked) keyTrace?.('core.ws.write');
    const wrote = write(...args);
    if (!corked) keyTrace?.('core.ws.written', socket.writableLength);
    return wrote;
  }) as typeof socket.write;
  socket.uncork = () => {
    const last = socket.writableCorked === 1;
    if (last) keyTrace?.('core.ws.write');
    uncork();
    if (last) keyTrace?.('core.ws.written', socket.writableLength);
  };
}

/**
 * Web mode: the renderer and the core API for a browser, on 127.0.0.1 only. The API WebSocket
 * (`/api?token=<secret>`) needs the per-launch secret, our own Host (DNS rebinding) and our own
 * Origin (cross-site pages); anything else is refused before a single frame is read.
 */
export class WebServer implements Disposable {
  readonly secret = newLaunchSecret();
  readonly api: CoreApiServer;
  /** The page offers its subprotocols; this core picks joined frames (shared's chooseUiProtocol). */
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    handleProtocols: chooseUiProtocol,
  });
  private readonly http: Server;
  private readonly logger: Logger;
  private readonly staticDir: string;
  private boundPort = 0;

  private constructor(options: WebServerOptions) {
    this.logger = (options.logger ?? options.core.logger).child({ component: 'web' });
    this.staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
    this.api = new CoreApiServer(options.core, options.platform ?? nodePlatform(this.logger), {
      logger: this.logger,
      ...(options.muxOptions ? { mux: options.muxOptions } : {}),
    });
    this.http = createServer((request, response) => this.onRequest(request, response));
    this.http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(request, socket, head),
    );
  }

  static async start(options: WebServerOptions): Promise<WebServer> {
    const server = new WebServer(options);
    const port = options.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'EADDRINUSE'
            ? new HangarError(
                'E_UNAVAILABLE',
                `port ${port} on 127.0.0.1 is in use; pick another with --port, or 0 for any`,
              )
            : error,
        );
      });
      // Loopback only: web mode is for this computer's browser, never the network.
      server.http.listen(port, '127.0.0.1', () => resolve());
    }).catch(async (error: unknown) => {
      await server.api.dispose();
      throw error;
    });
    const address = server.http.address();
    server.boundPort = typeof address === 'object' && address ? address.port : port;
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  /** What to open. The secret rides in the fragment, which browsers never send to a server or log. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/#token=${this.secret}`;
  }

  private securityHeaders(response: ServerResponse): void {
    response.setHeader('Content-Security-Policy', contentSecurityPolicy(this.port));
    response.setHeader('X-Content-Type-Options', 'nosniff');
    response.setHeader('X-Frame-Options', 'DENY');
    response.setHeader('Referrer-Policy', 'no-referrer');
    response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    response.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  }

  private onRequest(request: IncomingMessage, response: ServerResponse): void {
    this.securityHeaders(response);
    const refused = checkHost(request, this.port);
    if (refused) return send(response, refused.status, 'text/plain; charset=utf-8', `${refused.reason}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return send(response, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
    }
    const path = (request.url ?? '/').split('?')[0]!;
    if (path === API_PATH) return send(response, 426, 'text/plain; charset=utf-8', 'the API is a WebSocket\n');
    serveStatic(this.staticDir, path, response).catch((error: unknown) => {
      this.logger.error({ err: error, path }, 'static file failed');
      if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else response.destroy();
    });
  }

  private onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? '/').split('?')[0];
    const refused: Refusal | undefined =
      path !== API_PATH
        ? { status: 403, reason: `WebSocket only at ${API_PATH}` }
        : (checkHost(request, this.port) ?? checkOrigin(request, this.port) ?? checkToken(request, this.secret));
    if (refused) {
      this.logger.warn({ status: refused.status, reason: refused.reason }, 'refused an API connection');
      const body = `${refused.reason}\n`;
      socket.end(
        `HTTP/1.1 ${refused.status} ${refused.status === 401 ? 'Unauthorized' : 'Forbidden'}\r\n` +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    // HANGAR_TRACE_KEYS: the page's bytes in, and its messages out, stamped (traceWebSocketBytes).
    if (keyTrace) traceWebSocketBytes(socket);
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      this.logger.info('UI connected');
      // Joined frames when the page offered them (a page of another build may not split them).
      this.api.serve(wrapWebSocket(smallFramesInOneWrite(ws, socket), undefined, uiWebSocketOptions(ws.protocol)));
    });
  }

  async dispose(): Promise<void> {
    await this.api.dispose();
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
