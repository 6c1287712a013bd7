import {
  ControlRequest,
  HOST_PROCEDURES,
  HangarError,
  Mux,
  SCHEMA_VERSION,
  isHostMethod,
  parseOrThrow,
  toHangarError,
  type Disposable,
  type HostMethod,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { AuthenticatedLink } from '../link/index.js';
import type { CallContext, Outcome, ProcedureTable } from './procedures.js';

/** Requests one link may have in flight; more is a misbehaving client. */
const MAX_IN_FLIGHT = 64;

/**
 * One authenticated client link: decodes control requests, validates them against the shared
 * procedure table, runs the handler, answers. Bad input gets an error answer (or, when it is not
 * even a request, the link is closed with a reason); it never reaches a handler.
 */
export class ClientPeer implements Disposable {
  readonly mux: Mux;
  private inFlight = 0;
  private readonly call: CallContext;

  constructor(
    link: AuthenticatedLink,
    private readonly procedures: ProcedureTable,
    private readonly logger: Logger,
  ) {
    this.mux = new Mux(link.transport, { role: 'agent' });
    this.call = { mux: this.mux, device: link.device.public_key };
    this.mux.onControl((json) => this.onControl(json));
  }

  private onControl(json: string): void {
    let request: ControlRequest;
    try {
      request = parseOrThrow(ControlRequest, JSON.parse(json), 'control request');
    } catch (error) {
      const failure = toHangarError(error);
      const id = requestIdOf(json);
      if (id === undefined) {
        // Not even addressable: the peer is broken or hostile. Close this link only.
        this.logger.warn({ err: failure }, 'closing link: unparseable control message');
        this.mux.close({ code: 'E_PROTOCOL', message: `bad control message: ${failure.message}`.slice(0, 1000) });
        return;
      }
      this.respondError(
        id,
        failure.code === 'E_INTERNAL' ? new HangarError('E_BAD_REQUEST', failure.message) : failure,
      );
      return;
    }
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.respondError(
        request.id,
        new HangarError('E_UNAVAILABLE', `more than ${MAX_IN_FLIGHT} requests in flight; wait for answers`),
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
      .catch((error: unknown) => this.respondError(request.id, toHangarError(error)))
      .finally(() => {
        this.inFlight--;
      });
  }

  private async dispatch(request: ControlRequest): Promise<Outcome<HostMethod>> {
    if (!isHostMethod(request.method)) {
      throw new HangarError('E_BAD_REQUEST', `unknown method "${request.method}"`);
    }
    const method = request.method;
    const params = parseOrThrow(HOST_PROCEDURES[method].params, request.params ?? {}, method);
    this.logger.debug({ method }, 'request');
    const handler = this.procedures[method] as (p: unknown, c: CallContext) => Promise<Outcome<HostMethod>>;
    return handler(params, this.call);
  }

  /** An event for this client; dropped if the link is gone (clients re-read state on reconnect). */
  publish(event: string, data: unknown): void {
    this.send({ schema_version: SCHEMA_VERSION, kind: 'event', event, data });
  }

  private respondError(id: number, error: HangarError): void {
    if (error.code === 'E_INTERNAL') this.logger.error({ err: error }, 'request failed');
    this.send({ schema_version: SCHEMA_VERSION, kind: 'response', id, ok: false, error: error.toJSON() });
  }

  private send(message: object): void {
    if (!this.mux.closed) this.mux.sendControl(JSON.stringify(message));
  }

  dispose(): void {
    this.mux.dispose();
  }
}

function requestIdOf(json: string): number | undefined {
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value === 'object' && value !== null && 'id' in value) {
      const id = (value as { id: unknown }).id;
      if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
