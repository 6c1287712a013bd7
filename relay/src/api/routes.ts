import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  HangarError,
  RELAY_PROCEDURES,
  isRelayMethod,
  parseOrThrow,
  relayOrigin,
  toHangarError,
  type RelayMethod,
} from '@hangar/shared';
import { timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { sql } from 'kysely';
import type { DeviceRow, RelayContext } from '../context.js';
import { httpStatus } from '../ops/http-status.js';
import { ping } from '../store/db.js';
import { authHandlers } from './auth.js';
import { billingHandlers } from './billing.js';
import { requireTrusted, signedIn, type Call, type Handler, type Handlers } from './call.js';
import { turnCredentials } from '../turn.js';
import { deviceHandlers } from './devices.js';
import { hostHandlers } from './hosts.js';
import { memberHandlers } from './members.js';

const handlers: Handlers = {
  'relay.info': async (ctx, _params, call) => ({
    version: ctx.version,
    origin: call.origin,
    oidc: ctx.oidc ? { issuer: ctx.oidc.config.issuer, client_id: ctx.oidc.config.clientId } : null,
  }),
  'turn.credentials': async (ctx, _params, call) => {
    const device = signedIn(call);
    return { ice: ctx.turn ? turnCredentials(ctx.turn, device.id, ctx.now()) : null };
  },
  ...authHandlers,
  ...hostHandlers,
  ...deviceHandlers,
  ...billingHandlers,
  ...memberHandlers,
};

/** The origin proofs and challenges name: --public-url's, else how this request reached us. */
export function requestOrigin(ctx: RelayContext, request: FastifyRequest): string {
  return ctx.publicOrigin ?? relayOrigin(`${request.protocol}://${request.host}`);
}

/** The device behind `Authorization: Bearer <access token>`, checked against the database. */
export async function authenticate(ctx: RelayContext, token: string | undefined) {
  if (token === undefined) {
    throw new HangarError(
      'E_AUTH_REQUIRED',
      'this call needs a signed-in device (Authorization: Bearer <access token>)',
    );
  }
  const claims = await ctx.accessTokens.verify(token);
  // One read for both: the device, and whether the token's login still has an unrevoked refresh
  // token (refresh_tokens_family index). Written out: the query builder's subquery cost ~25 µs of
  // CPU per call more than this (SQLite, every signed-in call runs it).
  const { rows } = await sql<DeviceRow & { login_live: number | boolean }>`
    select devices.*, exists (
      select 1 from refresh_tokens
      where family_id = ${claims.sessionId} and device_id = devices.id and revoked_at is null
    ) as login_live
    from devices where devices.id = ${claims.deviceId}`.execute(ctx.db);
  if (ctx.afterAuthRead) await ctx.afterAuthRead();
  const row = rows[0];
  if (row === undefined || row.account_id !== claims.accountId) {
    throw new HangarError('E_AUTH_REQUIRED', 'this device is not on the account any more; log in again');
  }
  const { login_live: live, ...device } = row;
  if (device.status === 'revoked') {
    throw new HangarError('E_AUTH_DEVICE_REVOKED', await revokedMessage(ctx, device));
  }
  if (!live) {
    throw new HangarError('E_AUTH_REQUIRED', 'this login was ended (logout or a reused refresh token); log in again');
  }
  return { device, claims };
}

/**
 * Why a revoked device is refused. A member's device whose membership is gone was revoked by the
 * owner's removal: it is told so, as its sockets were as they closed (account.remove_member).
 */
async function revokedMessage(ctx: RelayContext, device: DeviceRow): Promise<string> {
  const revoked = `this device (${device.name}) was revoked on this account`;
  if (device.member_email === null) return revoked;
  const membership = await ctx.db
    .selectFrom('account_members')
    .select('email')
    .where('account_id', '=', device.account_id)
    .where('email', '=', device.member_email)
    .where('joined_at', 'is not', null)
    .executeTakeFirst();
  if (membership !== undefined) return revoked;
  const account = await ctx.db
    .selectFrom('accounts')
    .select('email')
    .where('id', '=', device.account_id)
    .executeTakeFirst();
  return `you are no longer a member of ${account?.email ?? 'this'}'s Hangar account (its owner removed you): ${revoked}`;
}

/** `status` only where HTTP has a truer one than the code's (413, 415 of a body the framework refused). */
export function sendError(ctx: RelayContext, reply: FastifyReply, error: HangarError, status?: number): FastifyReply {
  ctx.metrics.errors.inc({ code: error.code });
  const retryAfterMs = error.details?.['retry_after_ms'];
  if (typeof retryAfterMs === 'number')
    reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  return reply.code(status ?? httpStatus(error.code)).send({ error: error.toJSON() });
}

export function registerRoutes(app: FastifyInstance, ctx: RelayContext): void {
  app.post<{ Params: { procedure: string } }>('/v1/:procedure', async (request, reply) => {
    const method = request.params.procedure;
    if (!isRelayMethod(method)) {
      return sendError(ctx, reply, new HangarError('E_NOT_FOUND', `no procedure "${method}" on this relay`));
    }
    try {
      const result = await callProcedure(ctx, method, request);
      return reply.code(200).send(result);
    } catch (error) {
      const hangarError = toHangarError(error);
      if (hangarError.code === 'E_INTERNAL') request.log.error({ err: error, procedure: method }, 'procedure failed');
      else request.log.info({ procedure: method, code: hangarError.code }, 'procedure refused');
      return sendError(ctx, reply, hangarError);
    }
  });

  app.get('/healthz', async (_request, reply) => {
    try {
      await ping(ctx.db);
      return reply.send({ ok: true, replica: ctx.replicaId, version: ctx.version });
    } catch (error) {
      return sendError(
        ctx,
        reply,
        new HangarError('E_UNAVAILABLE', `database unreachable: ${toHangarError(error).message}`),
      );
    }
  });

  // Where Stripe Checkout and the customer portal send the browser back: a page that says so.
  app.get<{ Querystring: Record<string, string> }>('/v1/billing/return', async (request, reply) => {
    const query = request.query;
    const text =
      query['checkout'] === 'done'
        ? 'Payment received. Your plan changes within a few seconds; you can close this tab and go back to Hangar.'
        : query['checkout'] === 'cancelled'
          ? 'Checkout was cancelled; nothing was charged. You can close this tab.'
          : 'You can close this tab and go back to Hangar.';
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'none'")
      .send(`<!doctype html><meta charset="utf-8"><title>Hangar billing</title><p>${text}</p>`);
  });

  app.get('/metrics', async (request, reply) => {
    // Counts of agents, devices, logins and billing are the operator's, not the internet's.
    if (!mayReadMetrics(ctx, request)) {
      return sendError(
        ctx,
        reply,
        new HangarError(
          'E_FORBIDDEN',
          "/metrics answers only on the relay's own host (one of its addresses, not through a proxy) or to " +
            "Authorization: Bearer <the token in the relay's --metrics-token-file>",
        ),
      );
    }
    const text = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(text);
  });
}

async function callProcedure(ctx: RelayContext, method: RelayMethod, request: FastifyRequest): Promise<unknown> {
  const spec = RELAY_PROCEDURES[method];
  const call: Call = {
    ip: ctx.clientAddress(request.raw),
    requestId: String(request.id),
    origin: requestOrigin(ctx, request),
    device: undefined,
    sessionId: undefined,
  };
  if (spec.auth !== 'none') {
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    const { device, claims } = await authenticate(ctx, token);
    call.device = device;
    call.sessionId = claims.sessionId;
    ctx.limits.take('api', call.device.account_id, 'requests for this account');
    // The table says who may call what (RELAY_PROCEDURES' `auth`); this is the only place that checks it.
    if (spec.auth === 'device') requireTrusted(call.device, method);
  }
  const params = parseOrThrow(spec.params, request.body ?? {}, method);
  const handler = handlers[method] as Handler<RelayMethod>;
  return handler(ctx, params as never, call);
}

/** The token of --metrics-token-file, or a request from this host that no proxy forwarded. */
function mayReadMetrics(ctx: RelayContext, request: FastifyRequest): boolean {
  const header = request.headers.authorization;
  if (ctx.metricsToken !== undefined && header?.startsWith('Bearer ')) {
    const given = Buffer.from(header.slice('Bearer '.length).trim());
    const expected = Buffer.from(ctx.metricsToken);
    if (given.length === expected.length && timingSafeEqual(given, expected)) return true;
  }
  if (request.headers['x-forwarded-for'] !== undefined) return false;
  return isThisHost(ctx.clientAddress(request.raw));
}

/** A connection from one of this machine's own addresses (loopback or an interface's). */
function isThisHost(address: string): boolean {
  const bare = address.replace(/^::ffff:(?=\d+\.)/, '');
  if (bare === '::1' || bare.startsWith('127.')) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((entry) => entry.address === bare));
}
