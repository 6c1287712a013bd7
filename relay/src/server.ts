import type { TurnConfig } from './turn.js';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';
import {
  DisposableStore,
  HangarError,
  relayOrigin,
  toDisposable,
  toHangarError,
  type Disposable,
} from '@hangar/shared';
import { DEFAULT_PASSWORD_COST } from './accounts/passwords.js';
import { OidcVerifier, type OidcConfig } from './accounts/oidc.js';
import { AccessTokens, loadAccessKey } from './accounts/tokens.js';
import { Billing, type BillingOptions } from './billing/billing.js';
import { loadEntitlementSigner } from './billing/entitlement-key.js';
import { MeterOutbox } from './billing/meter-outbox.js';
import { registerStripeWebhook } from './billing/webhook.js';
import { checkoutInstallScript, loadInstallScript, registerInstallScript } from './api/install-script.js';
import { registerRoutes, requestOrigin, sendError } from './api/routes.js';
import { MemoryBus, type RelayBus } from './bus/bus.js';
import { PgBus } from './bus/pg-bus.js';
import type { RelayContext } from './context.js';
import { AuditLog } from './ops/audit.js';
import { BackgroundWork } from './ops/background.js';
import { createMetrics } from './ops/metrics.js';
import { forwardedClient, RateLimiter, scaledLimits } from './ops/rate-limit.js';
import { LoginThrottle, scaledLoginThrottle } from './accounts/login-throttle.js';
import { AgentConnection } from './sockets/agent-connection.js';
import { DeviceConnection } from './sockets/device-connection.js';
import { SocketHub } from './sockets/hub.js';
import { DEFAULT_SPLICE_LIMITS, SpliceHub, type SpliceLimits } from './sockets/splice.js';
import { openStore, type StorageConfig } from './store/db.js';
import { RELAY_VERSION } from './version.js';

export interface RelayOptions {
  listen: { host: string; port: number };
  storage: StorageConfig;
  /** PEM contents; with them the relay serves HTTPS/WSS itself. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** The URL clients use (behind a proxy, say); its origin is what proofs must name. */
  publicUrl?: string;
  oidc?: OidcConfig;
  /** Behind a reverse proxy: take the client address and scheme from X-Forwarded-*. */
  trustProxy?: boolean;
  /** log2 N of scrypt for new password hashes (default 17). */
  passwordCost?: number;
  /** Multiplies every rate limit. */
  rateLimitScale?: number;
  now?: () => number;
  /** Where JSON log lines go (default stderr) and from which level. */
  log?: { destination?: DestinationStream; level?: string };
  heartbeatMs?: number;
  deadAfterMs?: number;
  signalTimeoutMs?: number;
  /** Stripe settings turn billing on; without them it is off (self-hosted: nothing metered). */
  billing?: BillingOptions;
  /** Limits of relayed links (splices), per account; defaults in DEFAULT_SPLICE_LIMITS. */
  splice?: Partial<SpliceLimits>;
  /** The install script served at /install.sh; default: the checkout's build/install/install.sh. */
  installScript?: string;
  /** coturn beside the relay: its URIs and static-auth-secret (hosts and devices get credentials). */
  turn?: TurnConfig;
  /** A bearer token that opens /metrics from anywhere (Prometheus' `authorization.credentials_file`); without it, this host only. */
  metricsToken?: string;
  /** A request's headers and body must arrive within this (default REQUEST_TIMEOUT_MS; tests lower it). */
  requestTimeoutMs?: number;
  /** Tests only: awaited in authenticate after its read of the device and login, to open races there. */
  afterAuthRead?: () => Promise<void>;
  /** Tests only: awaited in a member's auth.login after their password checked out, before the device and session are made. */
  afterMemberPasswordCheck?: () => Promise<void>;
  /** Tests only: awaited in hosts.enroll after its checks of the token's maker and login, before the token is spent. */
  afterEnrollChecks?: () => Promise<void>;
}

export interface RunningRelay extends Disposable {
  readonly url: string;
  readonly port: number;
  readonly replicaId: string;
  readonly context: RelayContext;
}

/**
 * A request (headers and body, at most 256 KiB) that has not arrived in this long is dropped, and a
 * connection that sends nothing is too: else each peer that dawdles holds a descriptor for ever
 * (slowloris), and enough of them stop the relay accepting anyone. Upgraded sockets (agents,
 * devices, splices) have their own deadlines past the upgrade.
 */
export const REQUEST_TIMEOUT_MS = 30_000;

/** The largest request body the relay takes. */
const BODY_LIMIT = 256 * 1024;

/** Never logged: what would let a reader act as a user, a device or the relay. */
const REDACT = [
  'req.headers.authorization',
  ...['password', 'refresh_token', 'access_token', 'relay_secret', 'id_token', 'token', 'secret'].flatMap((key) => [
    key,
    `*.${key}`,
    `*.*.${key}`,
  ]),
];

export function createLogger(options: RelayOptions['log'] = {}): Logger {
  return pino(
    { name: 'hangar-relay', level: options.level ?? process.env['HANGAR_LOG_LEVEL'] ?? 'info', redact: REDACT },
    options.destination ?? pino.destination(2),
  );
}

/** The composition root: storage, bus, services, HTTP and WebSocket routes, background work. */
export async function startRelay(options: RelayOptions): Promise<RunningRelay> {
  const disposables = new DisposableStore();
  const logger = createLogger(options.log).child({ component: 'relay' });
  try {
    const installScript = loadInstallScript(options.installScript);
    if (installScript === undefined) {
      logger.warn(
        { looked_at: checkoutInstallScript() },
        'no install script: /install.sh answers 404 (give one with --install-script)',
      );
    }
    const store = disposables.add(
      await openStore(options.storage, {
        onPoolError: (error) => logger.warn({ err: error }, 'idle database client failed'),
      }),
    );
    const now = options.now ?? Date.now;
    const bus: RelayBus = disposables.add(
      store.pool ? await PgBus.start(store.pool, store.db, logger) : new MemoryBus(),
    );
    const limits = disposables.add(new RateLimiter(scaledLimits(options.rateLimitScale ?? 1), now));
    const loginThrottle = disposables.add(new LoginThrottle(scaledLoginThrottle(options.rateLimitScale ?? 1), now));
    const replicaId = `replica_${randomBytes(8).toString('hex')}`;
    const ctx: RelayContext = {
      db: store.db,
      dialect: store.dialect,
      bus,
      now,
      logger,
      limits,
      loginThrottle,
      audit: new AuditLog(store.db, now),
      metrics: createMetrics(),
      accessTokens: new AccessTokens(await loadAccessKey(store.db), now),
      oidc: options.oidc ? new OidcVerifier(options.oidc, now) : undefined,
      passwordCost: options.passwordCost ?? DEFAULT_PASSWORD_COST,
      replicaId,
      publicOrigin: options.publicUrl ? relayOrigin(options.publicUrl) : undefined,
      turn: options.turn,
      metricsToken: options.metricsToken,
      clientAddress: (request) => clientAddress(request, options.trustProxy === true),
      afterAuthRead: options.afterAuthRead,
      afterMemberPasswordCheck: options.afterMemberPasswordCheck,
      afterEnrollChecks: options.afterEnrollChecks,
      version: RELAY_VERSION,
      billing: new Billing(store.db, await loadEntitlementSigner(store.db), options.billing ?? {}, now),
    };
    const background = new BackgroundWork(ctx, store.pool);
    await background.start();
    disposables.add(background);
    const hub = new SocketHub(ctx, options.heartbeatMs, options.deadAfterMs, options.signalTimeoutMs);
    disposables.add(toDisposable(() => background.releaseHosts()));
    disposables.add(hub);
    const splices = disposables.add(
      new SpliceHub(ctx, hub, { ...DEFAULT_SPLICE_LIMITS, ...options.splice }, ctx.clientAddress),
    );
    const stripe = ctx.billing.stripe;
    if (stripe !== undefined) {
      // Sends only while this replica holds the background lock; new minutes anywhere wake it.
      const outbox = new MeterOutbox(ctx, stripe, () => background.isSweeper, options.billing?.outbox);
      disposables.add(outbox);
      disposables.add(bus.onEvent((event) => event.t === 'billing.usage' && void outbox.wake()));
      void outbox.wake();
    }

    const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    // Node's own limits (Fastify's defaults turn the request timeout off): headers and the whole
    // request within requestTimeout, looked at every second (Node's default: every 30 s).
    const serverTimeouts = {
      headersTimeout: requestTimeout,
      requestTimeout,
      connectionsCheckingInterval: Math.min(1_000, requestTimeout),
    };
    // One instance type whether it serves HTTP or HTTPS; nothing here depends on which.
    const app = Fastify({
      requestTimeout,
      // A request that did not arrive in time (408), headers too large (431), bytes that are not
      // HTTP (400): Node's parser refuses them before any route, and this answers in the relay's shape.
      clientErrorHandler: (error, socket) => answerClientError(error, socket, requestTimeout),
      http: serverTimeouts,
      loggerInstance: logger as FastifyBaseLogger,
      // One proxy, the peer of our socket: its last X-Forwarded-For entry is the address it saw. Trusting
      // every hop (`true`) would take the first entry, which the client writes itself when the proxy
      // appends (nginx's $proxy_add_x_forwarded_for): a new address per request, past every limit.
      trustProxy: options.trustProxy ? (_address: string, hop: number) => hop === 0 : false,
      bodyLimit: BODY_LIMIT,
      // On stop, end keep-alive connections too: one that went idle just after close() began
      // otherwise holds the server open until its keep-alive timeout (72 s).
      forceCloseConnections: true,
      genReqId: () => `req_${randomBytes(8).toString('hex')}`,
      ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key, ...serverTimeouts } } : {}),
    }) as unknown as FastifyInstance;
    app.addHook('onSend', async (request, reply) => {
      reply.header('x-request-id', request.id);
    });
    // Malformed JSON (400), a body too large (413), a wrong content type (415): that status, in the
    // relay's error shape with E_BAD_REQUEST and a message saying what to send instead.
    app.setErrorHandler((error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      if (status >= 500) {
        logger.error({ err: error }, 'request failed');
        return sendError(ctx, reply, toHangarError(error));
      }
      return sendError(ctx, reply, new HangarError('E_BAD_REQUEST', frameworkRefusal(error as Error)), status);
    });
    app.setNotFoundHandler((request, reply) =>
      sendError(
        ctx,
        reply,
        new HangarError('E_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]} on this relay`),
      ),
    );
    await app.register(websocket, { options: { maxPayload: 160 * 1024 } });
    // Splices are plain HTTP upgrades (not WebSockets): taken before @fastify/websocket's
    // listener, which would answer them 400; every other upgrade goes on to it unchanged.
    const webSocketUpgrades = app.server.listeners('upgrade') as ((...args: unknown[]) => void)[];
    app.server.removeAllListeners('upgrade');
    app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (splices.handles(request)) return splices.upgrade(request, socket, head);
      for (const listener of webSocketUpgrades) listener.call(app.server, request, socket, head);
    });
    const socketLimit = async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        limits.take('socket', ctx.clientAddress(request.raw), 'connections from this address');
      } catch (error) {
        return sendError(ctx, reply, toHangarError(error));
      }
    };
    app.get('/v1/agent', { websocket: true, preValidation: socketLimit }, (socket, request) => {
      new AgentConnection(socket, ctx, hub, requestOrigin(ctx, request));
    });
    app.get('/v1/device', { websocket: true, preValidation: socketLimit }, (socket) => {
      new DeviceConnection(socket, ctx, hub);
    });
    // Before close() waits for connections: splices are upgraded sockets it would wait on.
    app.addHook('preClose', async () => splices.dispose());
    registerRoutes(app, ctx);
    registerInstallScript(app, ctx, installScript);
    if (stripe !== undefined) registerStripeWebhook(app, ctx, stripe);
    await app.listen({ host: options.listen.host, port: options.listen.port });
    // Stop accepting first; the hub then closes the sockets, and their hosts go offline.
    disposables.add(toDisposable(() => app.close()));
    const port = (app.server.address() as AddressInfo).port;
    const host = options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host;
    const url = `${options.tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    logger.info({ url, storage: store.description, replica: replicaId }, 'relay listening');
    return { url, port, replicaId, context: ctx, dispose: () => disposables.dispose() };
  } catch (error) {
    await disposables.dispose();
    throw error;
  }
}

/** RelayContext.clientAddress: the same as Fastify's `request.ip`, but ours, for every path. */
function clientAddress(request: IncomingMessage, trustProxy: boolean): string {
  const peer = request.socket.remoteAddress ?? 'unknown';
  return trustProxy ? forwardedClient(peer, request.headers['x-forwarded-for']) : peer;
}

/** What a client sent that the framework refused before the router, as a message saying what to do. */
function frameworkRefusal(error: Error): string {
  switch ((error as { code?: string }).code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `the request body is larger than the relay takes (${BODY_LIMIT / 1024} KiB): send less`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'the relay takes only Content-Type: application/json bodies';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the body is empty: send a JSON object ({} when a procedure takes no params)';
    default:
      return `the request is not valid JSON: ${error.message}`;
  }
}

/** Node's clientError (no request, so no x-request-id): the status and an error body, then the socket is ended. */
function answerClientError(error: Error & { code?: string }, socket: Duplex, requestTimeoutMs: number): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, body] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [
          408,
          'Request Timeout',
          new HangarError(
            'E_TIMEOUT',
            `the request did not arrive within ${Math.round(requestTimeoutMs / 1000)} s: send it again, whole`,
          ),
        ]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            'Request Header Fields Too Large',
            new HangarError('E_BAD_REQUEST', 'the request headers are too large'),
          ]
        : [400, 'Bad Request', new HangarError('E_BAD_REQUEST', 'the request is not valid HTTP/1.1')];
  const json = JSON.stringify({ error: body.toJSON() });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(json)}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy(error);
}
