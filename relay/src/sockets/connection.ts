import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { HangarError, RELAY_CLOSE, toHangarError, type ErrorShape } from '@hangar/shared';
import type { RelayContext } from '../context.js';
import type { SocketHub } from './hub.js';

/** How long a new socket has to authenticate before it is closed. */
export const AUTH_TIMEOUT_MS = 10_000;

/**
 * What agent and device sockets share: JSON messages checked with a zod schema, a clock of the
 * last word heard (the hub's heartbeat sweep reads it), and closing with a reason a client can
 * show. One instance per WebSocket, owned by the hub while it is open.
 */
export abstract class Connection<In, Out extends { type: string }> {
  lastHeard: number;
  lastPing: number;
  closed = false;
  private finish!: () => void;
  /** Resolves when the socket has closed and what its closing does (a host offline) is done. */
  readonly finished = new Promise<void>((resolve) => (this.finish = resolve));
  /** What the socket is handling: messages, and work queued with them, run one at a time in order. */
  protected queue: Promise<void> = Promise.resolve();
  /** Fails the socket when it runs out: the time to authenticate, then (devices) the token's life. */
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: WebSocket,
    private readonly schema: z.ZodType<In>,
    protected readonly ctx: RelayContext,
    protected readonly hub: SocketHub,
    /** Names the socket in the log. */
    private readonly kind: 'agent' | 'device',
  ) {
    this.lastHeard = this.lastPing = Date.now();
  }

  /** Who is on the socket, for the log: its host or device id once authenticated. */
  protected abstract logFields(): Record<string, string>;

  /** The `error` message of this socket's protocol, carrying `error` (both protocols have one). */
  protected abstract errorMessage(error: ErrorShape): Out;

  /** Runs `work` after everything queued before it; a failure is logged and told (internalError). */
  protected enqueue(work: () => Promise<void> | void): void {
    this.queue = this.queue.then(() => work()).catch((error: unknown) => this.internalError(error));
  }

  /**
   * Serves the socket, which has AUTH_TIMEOUT_MS to authenticate (else `authMissing`): each valid
   * message goes to `handle` after the ones before it, in arrival order (trickled candidates must
   * reach the peer in the order sent). Once the socket closes, `closing` runs after what it was
   * handling, and the hub waits for that (before the database closes) through `settle`.
   */
  protected serve(options: {
    handle: (message: In) => Promise<void>;
    authMissing: HangarError;
    closing: () => Promise<void> | void;
  }): void {
    this.failAfter(AUTH_TIMEOUT_MS, options.authMissing, RELAY_CLOSE.authFailed);
    this.socket.on('message', (data) => {
      this.lastHeard = Date.now();
      const message = this.parse(data);
      if (message !== undefined) this.enqueue(() => options.handle(message));
    });
    this.socket.on('close', () => {
      clearTimeout(this.deadline);
      this.closed = true;
      const settled = this.queue.then(() => options.closing());
      this.hub.settle(settled.catch((error: unknown) => this.internalError(error)).finally(() => this.finish()));
    });
    this.socket.on('error', (error) =>
      this.ctx.logger.debug({ err: error, ...this.logFields() }, `${this.kind} socket error`),
    );
  }

  /** Fails the socket with `error` and `code` in `ms`, replacing the deadline set before. */
  protected failAfter(ms: number, error: HangarError, code: number): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.fail(error, code), ms);
  }

  /** Authenticated for good (an agent): no deadline any more. */
  protected clearDeadline(): void {
    clearTimeout(this.deadline);
  }

  /** Handling a message failed: logged here, and the peer gets an `error` message. */
  private internalError(error: unknown): void {
    this.ctx.logger.error({ err: error, ...this.logFields() }, `${this.kind} socket: handling a message failed`);
    this.send(this.errorMessage(toHangarError(error).toJSON()));
  }

  send(message: Out): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify(message));
  }

  /** Parses one frame; a malformed one ends the socket with E_PROTOCOL naming the problem. */
  protected parse(data: unknown): In | undefined {
    let json: unknown;
    try {
      json = JSON.parse(String(data));
    } catch (error) {
      this.fail(new HangarError('E_PROTOCOL', `not JSON: ${(error as Error).message}`), RELAY_CLOSE.protocol);
      return undefined;
    }
    const parsed = this.schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
      this.fail(
        new HangarError('E_BAD_REQUEST', `bad message: ${where}${issue?.message ?? 'invalid'}`),
        RELAY_CLOSE.protocol,
      );
      return undefined;
    }
    return parsed.data;
  }

  /** Says why (an `error` message) and closes with an application close code. */
  fail(error: HangarError | ErrorShape, code: number): void {
    const shape = error instanceof HangarError ? error.toJSON() : error;
    this.send(this.errorMessage(shape));
    this.close(code, shape.message);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // A close reason is at most 123 bytes (RFC 6455 §5.5); the `error` message carried the rest.
    this.socket.close(code, Buffer.from(reason).subarray(0, 120).toString());
  }
}
