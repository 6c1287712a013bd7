import { ERROR_CODES, HangarError, isHangarError, type ErrorCode } from '../errors.js';
import { ErrorShapeSchema } from '../protocol/control.js';
import {
  RELAY_PROCEDURES,
  type RelayMethod,
  type RelayParams,
  type RelayResult,
  type SessionTokens,
} from '../protocol/relay.js';
import { parseOrThrow } from '../validate.js';
import { relayOrigin } from './statements.js';

/**
 * A client for the relay's procedures, typed from RELAY_PROCEDURES: the app core, the CLI and
 * the agent use it (Node's fetch or a browser's). Params are checked before they leave, results
 * when they arrive; every failure is a HangarError with the relay's code, or E_UNAVAILABLE when
 * the relay cannot be reached at all.
 */

/** The part of WHATWG fetch the client needs (Node 18+ and browsers have it). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal?: unknown },
) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;

export interface RelayClientOptions {
  /** The relay's base URL (`https://relay.example` or behind a proxy `https://example.com/relay`). */
  url: string;
  fetch?: FetchLike;
  /** Per call; a relay that does not answer in time is unreachable (default 15 s). */
  timeoutMs?: number;
}

export interface RelayCallOptions {
  accessToken?: string;
  /** This call's own limit (a presence read that must answer fast), instead of the client's. */
  timeoutMs?: number;
}

export class RelayClient {
  readonly baseUrl: string;
  /** What this client signs into login proofs and agent challenges. */
  readonly origin: string;
  private readonly fetch: FetchLike;
  private readonly timeoutMs: number;

  constructor(options: RelayClientOptions) {
    this.origin = relayOrigin(options.url);
    this.baseUrl = options.url.trim().replace(/\/+$/, '');
    const ambient = (globalThis as { fetch?: FetchLike }).fetch;
    const fetch = options.fetch ?? ambient;
    if (fetch === undefined) throw new HangarError('E_INTERNAL', 'no fetch in this runtime; pass one to RelayClient');
    this.fetch = fetch;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  async call<M extends RelayMethod>(
    method: M,
    params: RelayParams<M>,
    options: RelayCallOptions = {},
  ): Promise<RelayResult<M>> {
    const spec = RELAY_PROCEDURES[method];
    const checked: unknown = parseOrThrow(spec.params, params, method);
    if (spec.auth !== 'none' && options.accessToken === undefined) {
      throw new HangarError('E_AUTH_REQUIRED', `${method} needs a signed-in device: log in to the relay first`);
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (options.accessToken !== undefined) headers['authorization'] = `Bearer ${options.accessToken}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? this.timeoutMs);
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const response = await this.fetch(`${this.baseUrl}/v1/${method}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(checked),
        signal: controller.signal,
      });
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      text = await response.text();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new HangarError(
        'E_UNAVAILABLE',
        `relay unreachable at ${this.baseUrl} (${reason}); check the URL and that hangar-relay is running`,
      );
    } finally {
      clearTimeout(timer);
    }
    const body = parseJson(text);
    if (status !== 200) throw relayError(method, status, body, retryAfter, this.baseUrl);
    return parseResult(method, body);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // Not JSON: a proxy's HTML error page, say. The caller reports the status with the text.
    if (error instanceof SyntaxError) return text;
    throw error;
  }
}

function parseResult<M extends RelayMethod>(method: M, body: unknown): RelayResult<M> {
  try {
    return parseOrThrow(RELAY_PROCEDURES[method].result, body, `${method} result`) as RelayResult<M>;
  } catch (error) {
    if (!isHangarError(error)) throw error;
    throw new HangarError('E_PROTOCOL', `the relay answered ${method} with something unexpected: ${error.message}`);
  }
}

function relayError(
  method: string,
  status: number,
  body: unknown,
  retryAfter: string | null,
  baseUrl: string,
): HangarError {
  const shaped = ErrorShapeSchema.safeParse((body as { error?: unknown } | null)?.error);
  const details: Record<string, unknown> = { status };
  if (retryAfter !== null && /^\d+$/.test(retryAfter)) details['retry_after_ms'] = Number(retryAfter) * 1000;
  // How every hangar-relay answers a procedure it does not have (relay/src/api/routes.ts), before it
  // looks at the caller: one older than this client.
  if (
    status === 404 &&
    shaped.success &&
    shaped.data.code === 'E_NOT_FOUND' &&
    shaped.data.message === `no procedure "${method}" on this relay`
  ) {
    return new HangarError(
      'E_PROTOCOL',
      `the relay at ${baseUrl} is older than this Hangar: it has no ${method}. Its operator should upgrade ` +
        'hangar-relay to the release of this Hangar and restart it; until then use the Hangar release that ' +
        'matches the relay (hangar-relay --version there, or its /healthz)',
      { ...details, relay_lacks: method },
    );
  }
  if (shaped.success) {
    const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(shaped.data.code)
      ? shaped.data.code
      : 'E_INTERNAL';
    return new HangarError(code, shaped.data.message, { ...shaped.data.details, ...details });
  }
  const snippet = typeof body === 'string' ? body.slice(0, 200) : JSON.stringify(body).slice(0, 200);
  const code: ErrorCode = status === 429 ? 'E_RATE_LIMITED' : status >= 500 ? 'E_UNAVAILABLE' : 'E_PROTOCOL';
  return new HangarError(code, `${method}: the relay answered HTTP ${status}: ${snippet}`, details);
}

/** Refresh this long before the access token expires, so a call never races its expiry. */
const REFRESH_MARGIN_MS = 60_000;

export interface RelaySessionOptions {
  onTokens?: (tokens: SessionTokens) => void | Promise<void>;
  now?: () => number;
  /**
   * Spends the refresh token for new tokens (default: auth.refresh). A caller whose tokens several
   * processes share (the core's SQLite: a window and hangar commands) coordinates here, so that
   * only one of them spends a given refresh token (the relay revokes the whole login when one is
   * presented twice) and the others take what it got.
   */
  exchange?: (current: SessionTokens) => Promise<SessionTokens>;
}

/**
 * A signed-in device's session: calls with a fresh access token, refreshing by itself (once
 * for all concurrent callers: refresh tokens rotate, and presenting a spent one revokes the
 * session) and handing each new pair of tokens to `onTokens` so the caller can store them.
 */
export class RelaySession {
  private refreshing: Promise<SessionTokens> | undefined;

  constructor(
    readonly client: RelayClient,
    private tokens: SessionTokens,
    private readonly options: RelaySessionOptions = {},
  ) {}

  get current(): SessionTokens {
    return this.tokens;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const now = (this.options.now ?? Date.now)();
    if (this.tokens.access_expires_at - now < REFRESH_MARGIN_MS) await this.refresh();
    return this.tokens.access_token;
  }

  async call<M extends RelayMethod>(
    method: M,
    params: RelayParams<M>,
    options: Omit<RelayCallOptions, 'accessToken'> = {},
  ): Promise<RelayResult<M>> {
    const accessToken = await this.accessToken();
    try {
      return await this.client.call(method, params, { ...options, accessToken });
    } catch (error) {
      // The relay's clock and ours disagree, or the token was issued before a key change: once more, fresh.
      if (!isHangarError(error) || error.code !== 'E_AUTH_EXPIRED') throw error;
      await this.refresh();
      return this.client.call(method, params, { ...options, accessToken: this.tokens.access_token });
    }
  }

  refresh(): Promise<SessionTokens> {
    const exchange =
      this.options.exchange ??
      ((current: SessionTokens) => this.client.call('auth.refresh', { refresh_token: current.refresh_token }));
    this.refreshing ??= exchange(this.tokens)
      .then(async (tokens) => {
        this.tokens = tokens;
        await this.options.onTokens?.(tokens);
        return tokens;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  logout(): Promise<unknown> {
    return this.client.call('auth.logout', { refresh_token: this.tokens.refresh_token });
  }
}
