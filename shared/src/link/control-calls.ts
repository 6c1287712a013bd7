import type { Disposable } from '../disposable.js';
import { HangarError, toHangarError } from '../errors.js';
import type { CloseReason, ControlMessage } from '../protocol/control.js';
import { SCHEMA_VERSION } from '../protocol/schema-version.js';
import { EventHub, type EventData, type EventTable } from './event-hub.js';
import type { Mux } from './mux.js';

/**
 * How a ControlCalls checks what crosses the control stream. ControlClient's are its procedure and
 * event tables (zod); a hangar command talking to a running core of its own build trusts that
 * core to have checked both ends (electron/core/src/door/door-client.ts), and loads no schema.
 */
export interface ControlChecks {
  /** The params as they are sent; throws a HangarError naming the field for a bad call or method. */
  params(method: string, params: unknown): unknown;
  /** The answer as the caller gets it; throws E_PROTOCOL for one that breaks the contract. */
  result(method: string, raw: unknown): unknown;
  /** A control message from its JSON; throws for anything else (the link is then closed). */
  message(value: unknown): ControlMessage;
  /** An event's data as listeners get it, or why it is dropped. */
  event(event: string, data: unknown): { data: unknown } | { error: HangarError };
}

export interface ControlCallsOptions<E extends EventTable> {
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

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: HangarError) => void;
  timer: unknown;
}

/**
 * The calling side of a procedure table on a Mux's control stream: request ids, answers, time-outs,
 * events and the link closing, with what is checked left to `checks`. ControlClient is this with
 * the tables' schemas; this module itself loads no schema (a hangar command's fast path imports it).
 */
export class ControlCalls<E extends EventTable> implements Disposable {
  private readonly pending = new Map<number, Pending>();
  private readonly hub: EventHub<E>;
  private readonly ownsHub: boolean;
  private readonly subscriptions: Disposable[];
  private nextId = 1;
  private closedWith: HangarError | undefined;

  constructor(
    readonly mux: Mux,
    private readonly checks: ControlChecks,
    private readonly options: ControlCallsOptions<E> = {},
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

  /** Sends `method` with `params` (checked first: a bad call names its field and never leaves). */
  protected send(method: string, params: unknown, options: CallOptions = {}): Promise<unknown> {
    let checked: unknown;
    try {
      checked = this.checks.params(method, params ?? {});
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
    }).then((raw) => this.checks.result(method, raw));
  }

  /** Events that passed `checks`; a listener never sees one that did not. */
  on<K extends keyof E & string>(event: K, listener: (data: EventData<E, K>) => void): Disposable {
    return this.hub.on(event, listener);
  }

  private receive(json: string): void {
    let message: ControlMessage;
    try {
      message = this.checks.message(JSON.parse(json));
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
      const checked = this.checks.event(message.event, message.data);
      if ('error' in checked) this.options.onInvalidEvent?.(checked.error, message.event);
      else this.hub.fire({ event: message.event, data: checked.data } as Parameters<EventHub<E>['fire']>[0]);
    } else {
      // Only one side of a link serves a table; a request coming back is a peer that is confused.
      this.mux.close({ code: 'E_PROTOCOL', message: `${this.peer} sent a request (${message.method}) to a client` });
    }
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
