import type { Disposable } from '../disposable.js';
import type { HangarError } from '../errors.js';
import type { CloseReason } from '../protocol/control.js';
import { CORE_EVENTS, CORE_PROCEDURES, type CoreEvent, type CoreMethod } from '../protocol/core-api.js';
import { CoreTerminal, type TerminalHandle, type TerminalSink, type TerminalTarget } from './core-terminal.js';
import { ControlClient, type CallOptions, type CallParams, type CallResult } from './control-client.js';
import type { EventData } from './event-hub.js';
import { Mux, type MuxOptions, type OpenStreamOptions } from './mux.js';
import type { LinkStream } from './stream.js';
import type { FrameTransport } from './transport.js';

export type CoreCallParams<M extends CoreMethod> = CallParams<typeof CORE_PROCEDURES, M>;
export type CoreCallResult<M extends CoreMethod> = CallResult<typeof CORE_PROCEDURES, M>;
export type CoreEventData<E extends CoreEvent> = EventData<typeof CORE_EVENTS, E>;

export interface CoreApiClientOptions {
  /** The core in words, for errors (default "the Hangar core"). */
  peer?: string;
  mux?: Omit<MuxOptions, 'role'>;
  /** An event the core sent that CORE_EVENTS refuses (dropped). */
  onInvalidEvent?: (error: HangarError, event: string) => void;
}

/**
 * What a client of the core API offers its user: CoreApiClient, and the hangar command's client of
 * a running core's local door (electron/core/src/door/door-client.ts).
 */
export type CoreApi = Pick<
  CoreApiClient,
  'call' | 'on' | 'openStream' | 'openTerminal' | 'onDisconnect' | 'closed' | 'dispose'
>;

/**
 * One client of the app core's API over any transport: the window (a MessagePort), web mode (a
 * WebSocket) and the hangar command (in-process today, a local socket later) all hold one.
 * Calls and events are CORE_PROCEDURES and CORE_EVENTS through a ControlClient; terminals and
 * logs flow on streams this side opens (odd ids) and names in the call.
 */
export class CoreApiClient implements Disposable {
  readonly mux: Mux;
  private readonly control: ControlClient<typeof CORE_PROCEDURES, typeof CORE_EVENTS>;

  constructor(transport: FrameTransport, options: CoreApiClientOptions = {}) {
    this.mux = new Mux(transport, { ...options.mux, role: 'client' });
    this.control = new ControlClient(this.mux, CORE_PROCEDURES, CORE_EVENTS, {
      peer: options.peer ?? 'the Hangar core',
      ...(options.onInvalidEvent ? { onInvalidEvent: options.onInvalidEvent } : {}),
    });
  }

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
   * A session's terminal through this door (CoreTerminal: a stream of ours named in
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
