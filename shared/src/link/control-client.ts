import type { z } from 'zod';
import { HangarError } from '../errors.js';
import { ControlMessage } from '../protocol/control.js';
import { parseOrThrow } from '../validate.js';
import { ControlCalls, type CallOptions, type ControlCallsOptions, type ControlChecks } from './control-calls.js';
import type { ProcedureSpec } from './control-server.js';
import type { EventTable } from './event-hub.js';
import type { Mux } from './mux.js';

export type { CallOptions } from './control-calls.js';
export type ControlClientOptions<E extends EventTable> = ControlCallsOptions<E>;

/** The call's parameters as a caller writes them (defaults may be left out). */
export type CallParams<T extends Record<string, ProcedureSpec>, M extends keyof T> = z.input<T[M]['params']>;
/** The answer, parsed by the table (defaults applied). */
export type CallResult<T extends Record<string, ProcedureSpec>, M extends keyof T> = z.output<T[M]['result']>;

/**
 * The calling side of a procedure table on a Mux's control stream, beside ControlServer: the one
 * request/response client of the repository (the renderer, the CLI, the core's host links and the
 * tests use it). A call is validated here before it is sent (a bad call names its field and never
 * leaves), its answer is validated with the table, and an error answer becomes the HangarError the
 * server threw. Events are validated with the events table before any listener sees them. The link
 * closing rejects every pending call; a message that is not a control message closes the link.
 * (The calls themselves are ControlCalls': this adds the tables' schemas.)
 */
export class ControlClient<T extends Record<string, ProcedureSpec>, E extends EventTable> extends ControlCalls<E> {
  constructor(mux: Mux, procedures: T, events: E, options: ControlClientOptions<E> = {}) {
    super(mux, tableChecks(procedures, events, options.peer ?? 'the peer'), options);
  }

  call<M extends keyof T & string>(
    method: M,
    params: CallParams<T, M>,
    options: CallOptions = {},
  ): Promise<CallResult<T, M>> {
    return this.send(method, params, options) as Promise<CallResult<T, M>>;
  }
}

/** Every message, call, answer and event checked against its schema. */
function tableChecks(procedures: Record<string, ProcedureSpec>, events: EventTable, peer: string): ControlChecks {
  const has = (table: object, key: string) => Object.prototype.hasOwnProperty.call(table, key);
  return {
    params(method, params) {
      if (!has(procedures, method)) throw new HangarError('E_BAD_REQUEST', `unknown method "${method}"`);
      return parseOrThrow(procedures[method]!.params, params, method);
    },
    result(method, raw) {
      const parsed = procedures[method]!.result.safeParse(raw);
      if (parsed.success) return parsed.data;
      // The peer broke the contract: its fault, not the caller's input (so not E_BAD_REQUEST).
      const where = parsed.error.issues
        .slice(0, 3)
        .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
        .join('; ');
      throw new HangarError('E_PROTOCOL', `${peer} answered ${method} with an invalid result (${where})`);
    },
    message: (value) => parseOrThrow(ControlMessage, value, 'control message'),
    event(event, data) {
      if (!has(events, event))
        return { error: new HangarError('E_PROTOCOL', `${peer} sent an unknown event "${event}"`) };
      const parsed = events[event]!.safeParse(data);
      if (parsed.success) return { data: parsed.data };
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(data)'}: ${issue.message}` : 'invalid';
      return { error: new HangarError('E_PROTOCOL', `${peer} sent an invalid ${event} event (${where})`) };
    },
  };
}
