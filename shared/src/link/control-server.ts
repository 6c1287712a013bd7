import type { z } from 'zod';
import type { Disposable } from '../disposable.js';
import { HangarError, toHangarError } from '../errors.js';
import { ControlRequest, SCHEMA_VERSION } from '../protocol/control.js';
import { parseOrThrow } from '../validate.js';
import type { EventInput, EventTable } from './event-hub.js';
import type { Mux } from './mux.js';

/** One entry of a procedure table (HOST_PROCEDURES, CORE_PROCEDURES): the call's two schemas. */
export interface ProcedureSpec {
  params: z.ZodType;
  result: z.ZodType;
}

export interface ProcedureOutcome<R> {
  result: R;
  /** Runs after the answer is sent, so a stream's first bytes never overtake the answer. */
  after?: () => void;
}

/** One handler per entry; params arrive already parsed (defaults applied) by the entry's schema. */
export type ProcedureHandlers<T extends Record<string, ProcedureSpec>, C> = {
  [M in keyof T]: (params: z.output<T[M]['params']>, context: C) => Promise<ProcedureOutcome<z.input<T[M]['result']>>>;
};

export interface ControlServerOptions {
  /** Requests one link may have in flight; more is a misbehaving peer. */
  maxInFlight?: number;
  /**
   * A handler failed with E_INTERNAL, or this side published an event its table refuses (a bug
   * here, not bad input): log it. `method` is the call's or the event's name.
   */
  onInternalError?: (error: HangarError, method: string) => void;
  /** The peer sent something that is not even a request; the link is being closed. */
  onProtocolError?: (error: HangarError) => void;
  /** Each request that passed its schema, with its parsed params (the debug log of traffic). */
  onRequest?: (method: string, params: unknown) => void;
}

const DEFAULT_MAX_IN_FLIGHT = 64;

/**
 * Serves a procedure table on a Mux's control stream: decodes each request, validates it with the
 * table's schema, runs the handler, validates and sends the answer. Bad input gets an error answer
 * naming the field; a message that is not even addressable closes the link. Events are checked
 * against the events table before they leave. Platform-neutral, so the agent, the app core over
 * WebSocket and the core over Electron ports share it; ControlClient is its other end.
 */
export class ControlServer<
  T extends Record<string, ProcedureSpec>,
  C,
  E extends EventTable = EventTable,
> implements Disposable {
  private inFlight = 0;
  private readonly subscription: Disposable;

  constructor(
    readonly mux: Mux,
    private readonly procedures: T,
    private readonly events: E,
    private readonly handlers: ProcedureHandlers<T, C>,
    private readonly context: C,
    private readonly options: ControlServerOptions = {},
  ) {
    this.subscription = mux.onControl((json) => this.onControl(json));
  }

  /**
   * An event for this peer; dropped if the link is gone (peers re-read state on reconnect). Data
   * that its schema refuses is a bug on this side: it never leaves, and onInternalError hears of it
   * (publishers run inside other components' listeners, so throwing would break those instead).
   */
  publish<K extends keyof E & string>(event: K, data: EventInput<E, K>): void {
    const schema = Object.prototype.hasOwnProperty.call(this.events, event) ? this.events[event] : undefined;
    const checked = schema?.safeParse(data);
    if (!checked?.success) {
      const issue = checked?.error.issues[0];
      const why = issue ? `${issue.path.join('.') || '(data)'}: ${issue.message}` : 'not in the events table';
      this.options.onInternalError?.(new HangarError('E_INTERNAL', `event ${event} not sent: ${why}`), event);
      return;
    }
    this.send({ schema_version: SCHEMA_VERSION, kind: 'event', event, data: checked.data });
  }

  private onControl(json: string): void {
    let request: ControlRequest;
    try {
      request = parseOrThrow(ControlRequest, JSON.parse(json), 'control request');
    } catch (error) {
      const failure = toHangarError(error);
      const id = requestIdOf(json);
      if (id === undefined) {
        this.options.onProtocolError?.(failure);
        this.mux.close({ code: 'E_PROTOCOL', message: `bad control message: ${failure.message}`.slice(0, 1000) });
        return;
      }
      this.respondError(id, new HangarError('E_BAD_REQUEST', failure.message, failure.details), 'request');
      return;
    }
    const max = this.options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (this.inFlight >= max) {
      this.respondError(
        request.id,
        new HangarError('E_UNAVAILABLE', `more than ${max} requests in flight; wait for answers`),
        request.method,
      );
      return;
    }
    this.inFlight++;
    this.dispatch(request)
      .then((outcome) => {
        this.send({
          schema_version: SCHEMA_VERSION,
          kind: 'response',
          id: request.id,
          ok: true,
          result: outcome.result,
        });
        outcome.after?.();
      })
      .catch((error: unknown) => this.respondError(request.id, toHangarError(error), request.method))
      .finally(() => {
        this.inFlight--;
      });
  }

  private async dispatch(request: ControlRequest): Promise<ProcedureOutcome<unknown>> {
    if (!Object.prototype.hasOwnProperty.call(this.procedures, request.method)) {
      throw new HangarError('E_BAD_REQUEST', `unknown method "${request.method}"`);
    }
    const method = request.method as keyof T & string;
    const spec = this.procedures[method]!;
    const params = parseOrThrow(spec.params, request.params ?? {}, method);
    this.options.onRequest?.(method, params);
    const handler = this.handlers[method] as (p: unknown, c: C) => Promise<ProcedureOutcome<unknown>>;
    const outcome = await handler(params, this.context);
    const checked = spec.result.safeParse(outcome.result);
    if (!checked.success) {
      // Our own answer does not match the contract: a bug here, never the caller's fault.
      throw new HangarError('E_INTERNAL', `${method} produced an invalid result: ${checked.error.issues[0]?.message}`);
    }
    return { result: checked.data, ...(outcome.after ? { after: outcome.after } : {}) };
  }

  private respondError(id: number, error: HangarError, method: string): void {
    if (error.code === 'E_INTERNAL') this.options.onInternalError?.(error, method);
    this.send({ schema_version: SCHEMA_VERSION, kind: 'response', id, ok: false, error: error.toJSON() });
  }

  private send(message: object): void {
    if (!this.mux.closed) this.mux.sendControl(JSON.stringify(message));
  }

  dispose(): void {
    void this.subscription.dispose();
  }
}

function requestIdOf(json: string): number | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined; // not JSON at all: nothing to answer to
  }
  if (typeof value === 'object' && value !== null && 'id' in value) {
    const id = (value as { id: unknown }).id;
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  }
  return undefined;
}
