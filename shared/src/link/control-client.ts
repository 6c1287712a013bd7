import type { z } from 'zod';
import type { Disposable } from '../disposable.js';
import { HangarError, toHangarError } from '../errors.js';
import { ControlMessage, SCHEMA_VERSION, type CloseReason } from '../protocol/control.js';
import { parseOrThrow } from '../validate.js';
import type { ProcedureSpec } from './control-server.js';
import { EventHub, type EventData, type EventTable } from './event-hub.js';
import type { Mux } from './mux.js';

export interface ControlClientOptions<E extends EventTable> {
  /** The peer in words, for errors: `host "mini"`, `the Hangar core`. */
  peer?: string;
  /** Default per call; none when absent (a call may legitimately wait long, e.g. jobs.wait). */
  timeoutMs?: number;
  /** Where events go; pass one hub to keep listeners across links (a reconnecting connection). */
  hub?: EventHub<E>;
  /** An event that is not in the table or whose data does not match it: dropped, and told here. */
  onInvalidEvent?: (error: HangarError, event: string) => void;
}

export interface CallOptions {
  /** Overrides the client's default; 0 waits for as long as the link lives. */
  timeoutMs?: number;
}

/** The call's parameters as a caller writes them (defaults may be left out). */
export type CallParams<T extends Record<string, ProcedureSpec>, M extends keyof T> = z.input<T[M]['params']>;
/** The answer, parsed by the table (defaults applied). */
export type CallResult<T extends Record<string, ProcedureSpec>, M extends keyof T> = z.output<T[M]['result']>;

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: HangarError) => void;
  timer: unknown;
}

/**
 * The calling side of a procedure table on a Mux's control stream, beside ControlServer: the one
 * request/response client of the repository (the renderer, the CLI, the core's host links and the
 * tests use it). A call is validated here before it is sent (a bad call names its field and never
 * leaves), its answer is validated with the table, and an error answer becomes the HangarError the
 * server threw. Events are validated with the events table before any listener sees them. The link
 * closing rejects every pending call; a message that is not a control message closes the link.
 */
export class ControlClient<T extends Record<string, ProcedureSpec>, E extends EventTable> implements Disposable {
  private readonly pending = new Map<number, Pending>();
  private readonly hub: EventHub<E>;
  private readonly ownsHub: boolean;
  private readonly subscriptions: Disposable[];
  private nextId = 1;
  private closedWith: HangarError | undefined;

  constructor(
    readonly mux: Mux,
    private readonly procedures: T,
    private readonly events: E,
    private readonly options: ControlClientOptions<E> = {},
  ) {
    this.ownsHub = options.hub === undefined;
    this.hub = options.hub ?? new EventHub<E>();
    this.subscriptions = [
      mux.onControl((json) => this.receive(json)),
      mux.onClose((reason) => this.linkClosed(reason)),
    ];
    if (mux.closed) this.linkClosed({ code: 'closed', message: 'the link was already closed' });
  }

  private get peer(): string {
    return this.options.peer ?? 'the peer';
  }

  /** Calls in flight (for tests and for callers that bound their own concurrency). */
  get pendingCount(): number {
    return this.pending.size;
  }

  call<M extends keyof T & string>(
    method: M,
    params: CallParams<T, M>,
    options: CallOptions = {},
  ): Promise<CallResult<T, M>> {
    let checked: unknown;
    try {
      if (!Object.prototype.hasOwnProperty.call(this.procedures, method)) {
        throw new HangarError('E_BAD_REQUEST', `unknown method "${method}"`);
      }
      // A bad call is reported here, naming the field, and never reaches the peer.
      checked = parseOrThrow(this.procedures[method]!.params, params ?? {}, method);
      if (this.closedWith) throw this.closedWith;
    } catch (error) {
      return Promise.reject(toHangarError(error));
    }
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 0;
    return new Promise<unknown>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(
                new HangarError('E_TIMEOUT', `${this.peer} did not answer ${method} within ${timeoutMs / 1000} s`),
              );
            }, timeoutMs)
          : undefined;
      this.pending.set(id, { method, resolve, reject, timer });
      try {
        this.mux.sendControl(
          JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id, method, params: checked }),
        );
      } catch (error) {
        this.settle(id)?.reject(toHangarError(error));
      }
    }).then((raw) => this.checkResult(method, raw));
  }

  /** Typed, validated events of the table; the listener never sees data that fails its schema. */
  on<K extends keyof E & string>(event: K, listener: (data: EventData<E, K>) => void): Disposable {
    return this.hub.on(event, listener);
  }

  private checkResult<M extends keyof T & string>(method: M, raw: unknown): CallResult<T, M> {
    const parsed = this.procedures[method]!.result.safeParse(raw);
    if (parsed.success) return parsed.data as CallResult<T, M>;
    // The peer broke the contract: its fault, not the caller's input (so not E_BAD_REQUEST).
    const where = parsed.error.issues
      .slice(0, 3)
      .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
      .join('; ');
    throw new HangarError('E_PROTOCOL', `${this.peer} answered ${method} with an invalid result (${where})`);
  }

  private receive(json: string): void {
    let message: ControlMessage;
    try {
      message = parseOrThrow(ControlMessage, JSON.parse(json), 'control message');
    } catch (error) {
      const failure = toHangarError(error);
      this.mux.close({
        code: 'E_PROTOCOL',
        message: `${this.peer} sent a bad control message: ${failure.message}`.slice(0, 1000),
      });
      return;
    }
    if (message.kind === 'response') {
      // No pending call: the answer to one that timed out, arriving late. Nothing waits for it.
      const pending = this.settle(message.id);
      if (!pending) return;
      if (message.ok) pending.resolve(message.result);
      else pending.reject(HangarError.from(message.error));
    } else if (message.kind === 'event') {
      this.deliver(message.event, message.data);
    } else {
      // Only one side of a link serves a table; a request coming back is a peer that is confused.
      this.mux.close({ code: 'E_PROTOCOL', message: `${this.peer} sent a request (${message.method}) to a client` });
    }
  }

  private deliver(event: string, data: unknown): void {
    if (!Object.prototype.hasOwnProperty.call(this.events, event)) {
      this.options.onInvalidEvent?.(
        new HangarError('E_PROTOCOL', `${this.peer} sent an unknown event "${event}"`),
        event,
      );
      return;
    }
    const parsed = this.events[event]!.safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(data)'}: ${issue.message}` : 'invalid';
      this.options.onInvalidEvent?.(
        new HangarError('E_PROTOCOL', `${this.peer} sent an invalid ${event} event (${where})`),
        event,
      );
      return;
    }
    this.hub.fire({ event, data: parsed.data } as Parameters<EventHub<E>['fire']>[0]);
  }

  private settle(id: number): Pending | undefined {
    const pending = this.pending.get(id);
    if (!pending) return undefined;
    this.pending.delete(id);
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    return pending;
  }

  private linkClosed(reason: CloseReason): void {
    this.closedWith ??= new HangarError('E_UNAVAILABLE', `the link to ${this.peer} is closed: ${reason.message}`);
    for (const [id, pending] of [...this.pending]) {
      this.settle(id);
      pending.reject(
        new HangarError('E_UNAVAILABLE', `lost the link to ${this.peer} during ${pending.method}: ${reason.message}`),
      );
    }
  }

  /** Stops listening; calls still waiting fail. The mux belongs to whoever made it. */
  dispose(): void {
    this.linkClosed({ code: 'closed', message: 'the client was closed' });
    for (const subscription of this.subscriptions.splice(0)) void subscription.dispose();
    if (this.ownsHub) this.hub.dispose();
  }
}
