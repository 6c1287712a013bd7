import type { Disposable } from '../disposable.js';
import type { CloseReason } from '../protocol/control.js';
import type { CORE_EVENTS, CORE_PROCEDURES, CoreEvent, CoreMethod } from '../protocol/core-api.js';
import type { CallOptions, CallParams, CallResult } from './control-client.js';
import { CoreTerminal, type TerminalHandle, type TerminalSink, type TerminalTarget } from './core-terminal.js';
import type { EventData } from './event-hub.js';
import type { Mux, OpenStreamOptions } from './mux.js';
import type { LinkStream } from './stream.js';

export type CoreCallParams<M extends CoreMethod> = CallParams<typeof CORE_PROCEDURES, M>;
export type CoreCallResult<M extends CoreMethod> = CallResult<typeof CORE_PROCEDURES, M>;
export type CoreEventData<E extends CoreEvent> = EventData<typeof CORE_EVENTS, E>;

/** The calls and events half of a core client: checked with the tables, or trusted (a door of this build). */
export interface CoreControl extends Disposable {
  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>, options?: CallOptions): Promise<CoreCallResult<M>>;
  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable;
}

/**
 * What a client of the core API offers its user: CoreApiClient, and the hangar command's client of
 * a running core's local door (electron/core/src/door/door-client.ts).
 */
export type CoreApi = Pick<
  MuxCoreApi,
  'call' | 'on' | 'openStream' | 'openTerminal' | 'onDisconnect' | 'closed' | 'dispose'
>;

/**
 * A client of the app core's API on a mux: calls and events through its CoreControl, terminals and
 * logs on streams this side opens (odd ids) and names in the call. CoreApiClient checks everything
 * with the tables; the hangar command's DoorClient trusts a core of its own build. This module
 * loads no schema.
 */
export class MuxCoreApi implements Disposable {
  constructor(
    readonly mux: Mux,
    private readonly control: CoreControl,
  ) {}

  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>, options?: CallOptions): Promise<CoreCallResult<M>> {
    return this.control.call(method, params, options);
  }

  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable {
    return this.control.on(event, listener);
  }

  /** A stream of ours for a terminal, a log or a download; the caller acks what it has consumed. */
  openStream(options?: OpenStreamOptions): LinkStream {
    const stream = this.mux.openStream(options);
    stream.autoAck = false;
    return stream;
  }

  /**
   * A session's terminal through this client (CoreTerminal: a stream of ours named in
   * terminal.open). A door to a core in this very process gives the core's terminal itself.
   */
  openTerminal(target: TerminalTarget, sink: TerminalSink): TerminalHandle {
    return new CoreTerminal(this, target, sink);
  }

  onDisconnect(listener: (reason: CloseReason) => void): Disposable {
    return this.mux.onClose(listener);
  }

  get closed(): boolean {
    return this.mux.closed;
  }

  dispose(): void {
    this.control.dispose();
    this.mux.close({ code: 'closed', message: 'the client closed its connection to the core' });
  }
}
