import type { z } from 'zod';
import { Emitter, type Disposable } from '../disposable.js';
import { HangarError } from '../errors.js';
import { RELAY_CLOSE, RELAY_DEAD_AFTER_MS, RELAY_HEARTBEAT_MS } from '../protocol/relay.js';

/**
 * One outbound WebSocket to the relay that stays up by itself: it reconnects with exponential
 * backoff and jitter (so a relay restart is not met by every agent at the same instant),
 * heartbeats every 5 s both ways, and treats 9 s of silence as a dead socket. What is said on
 * it (auth, presence, signals) belongs to the agent and device sockets built on this.
 */

/** The part of a WHATWG WebSocket (or the `ws` package's) a text protocol needs. */
export interface TextSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
}
export type TextSocketFactory = (url: string) => TextSocketLike;

export interface Backoff {
  initialMs: number;
  maxMs: number;
}
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };

/** Delay before reconnect attempt n (0-based): half fixed, half random ("equal jitter"). */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (random() * ceiling) / 2;
}

export type RelaySocketState =
  | { state: 'connecting'; attempt: number }
  | { state: 'online' }
  | { state: 'offline'; error: HangarError; retry_in_ms: number | null };

export interface RelaySocketOptions<In> {
  /** ws:// or wss:// URL of the socket. */
  url: string;
  socketFactory: TextSocketFactory;
  incoming: z.ZodType<In>;
  backoff?: Backoff;
  random?: () => number;
  heartbeatMs?: number;
  deadAfterMs?: number;
}

const OPEN = 1;

export abstract class RelaySocket<In extends { type: string }, Out extends { type: string }> implements Disposable {
  private readonly stateEmitter = new Emitter<RelaySocketState>();
  readonly onState = this.stateEmitter.event;
  private socket: TextSocketLike | undefined;
  private attempt = 0;
  private disposed = false;
  private retryTimer: unknown;
  private heartbeat: unknown;
  private lastHeard = 0;
  private stopped: HangarError | undefined;
  /** One emitter per message type that has an event (messageEvent), fired after onMessage. */
  private readonly typeEmitters = new Map<string, Emitter<In>>();

  constructor(protected readonly options: RelaySocketOptions<In>) {}

  /**
   * An event of the relay's messages of one type, each as `pick` takes it apart: the agent's and
   * the device's onSignal, onPresence … are these, with no case of their own in onMessage.
   */
  protected messageEvent<T extends In['type'], V>(
    type: T,
    pick: (message: Extract<In, { type: T }>) => V,
  ): (listener: (value: V) => void) => Disposable {
    let emitter = this.typeEmitters.get(type);
    if (emitter === undefined) {
      emitter = new Emitter<In>();
      this.typeEmitters.set(type, emitter);
    }
    const messages = emitter;
    // Only messages of `type` reach this emitter (receive fires it by message.type).
    return (listener) => messages.event((message) => listener(pick(message as Extract<In, { type: T }>)));
  }

  /** Opens the socket; from then on it reconnects until dispose(). */
  start(): void {
    if (this.socket === undefined && this.retryTimer === undefined && !this.disposed) this.connect();
  }

  get isOpen(): boolean {
    return this.socket?.readyState === OPEN;
  }

  protected abstract onOpen(): void;
  /** A parsed message other than ping/pong. */
  protected abstract onMessage(message: In): void;

  protected send(message: Out): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  protected setOnline(): void {
    this.attempt = 0;
    this.stateEmitter.fire({ state: 'online' });
  }

  /** Ends reconnecting: the relay said this identity is gone (a removed host, a revoked device). */
  protected stop(error: HangarError): void {
    this.stopped = error;
    this.socket?.close(1000, 'stopped');
  }

  /**
   * Ends this socket and dials again with backoff: something done on it failed in a way a later
   * socket may not (the relay restarted while the access token was being renewed).
   */
  protected redial(reason: string): void {
    this.socket?.close(1000, reason.slice(0, 120));
  }

  private connect(): void {
    this.retryTimer = undefined;
    this.stateEmitter.fire({ state: 'connecting', attempt: this.attempt });
    const socket = this.options.socketFactory(this.options.url);
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.lastHeard = Date.now();
      this.startHeartbeat(socket);
      this.onOpen();
    });
    socket.addEventListener('message', (event) => this.receive(event.data));
    // The close event follows an error event; reconnecting is decided there, once.
    socket.addEventListener('error', () => undefined);
    socket.addEventListener('close', (event) => this.closed(socket, event.code, event.reason));
  }

  private receive(data: unknown): void {
    this.lastHeard = Date.now();
    const text = typeof data === 'string' ? data : data instanceof Uint8Array ? new TextDecoder().decode(data) : '';
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      this.socket?.close(RELAY_CLOSE.protocol, `unparsable message: ${String(error).slice(0, 80)}`);
      return;
    }
    const parsed = this.options.incoming.safeParse(json);
    if (!parsed.success) {
      this.socket?.close(RELAY_CLOSE.protocol, `unexpected message: ${parsed.error.issues[0]?.message ?? ''}`);
      return;
    }
    const message = parsed.data;
    if (message.type === 'ping') this.send({ type: 'pong' } as Out);
    else if (message.type !== 'pong') {
      this.onMessage(message);
      this.typeEmitters.get(message.type)?.fire(message);
    }
  }

  private startHeartbeat(socket: TextSocketLike): void {
    const every = this.options.heartbeatMs ?? RELAY_HEARTBEAT_MS;
    const deadAfter = this.options.deadAfterMs ?? RELAY_DEAD_AFTER_MS;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(
      () => {
        if (Date.now() - this.lastHeard > deadAfter) {
          // The network vanished under us: no close will come, so end it here and dial again.
          socket.close(RELAY_CLOSE.heartbeat, 'relay silent');
          this.closed(socket, RELAY_CLOSE.heartbeat, 'the relay stopped answering heartbeats');
          return;
        }
        this.send({ type: 'ping' } as Out);
      },
      Math.min(every, deadAfter / 3),
    );
  }

  private closed(socket: TextSocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return; // an old socket's late close
    this.socket = undefined;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.disposed) return;
    if (code === RELAY_CLOSE.revoked) {
      this.stopped ??= new HangarError('E_FORBIDDEN', `the relay ended this identity's access: ${reason || 'revoked'}`);
    }
    const error =
      this.stopped ??
      (code === RELAY_CLOSE.rateLimited
        ? // Refused, not lost: the relay says why (too many sockets of this computer) and when it retries.
          new HangarError('E_RATE_LIMITED', `${reason || 'the relay refused the connection'} (close ${code})`)
        : new HangarError('E_UNAVAILABLE', `relay connection closed (${code}${reason ? `: ${reason}` : ''})`));
    if (this.stopped !== undefined) {
      this.stateEmitter.fire({ state: 'offline', error, retry_in_ms: null });
      return;
    }
    const delay = backoffDelay(this.attempt++, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random);
    this.stateEmitter.fire({ state: 'offline', error, retry_in_ms: Math.round(delay) });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    this.socket?.close(1000, 'client closing');
    this.socket = undefined;
    this.stateEmitter.dispose();
    for (const emitter of this.typeEmitters.values()) emitter.dispose();
  }
}

/** http(s)://relay[/prefix] → ws(s)://relay[/prefix]/v1/<path>. */
export function relaySocketUrl(baseUrl: string, path: 'agent' | 'device'): string {
  return `${baseUrl.trim().replace(/\/+$/, '').replace(/^http/i, 'ws')}/v1/${path}`;
}
