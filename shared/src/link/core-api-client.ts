import type { HangarError } from '../errors.js';
import { CORE_EVENTS, CORE_PROCEDURES } from '../protocol/core-api.js';
import { MuxCoreApi } from './core-api-base.js';
import { ControlClient } from './control-client.js';
import { Mux, type MuxOptions } from './mux.js';
import type { FrameTransport } from './transport.js';

export type { CoreApi, CoreCallParams, CoreCallResult, CoreEventData } from './core-api-base.js';

export interface CoreApiClientOptions {
  /** The core in words, for errors (default "the Hangar core"). */
  peer?: string;
  mux?: Omit<MuxOptions, 'role'>;
  /** An event the core sent that CORE_EVENTS refuses (dropped). */
  onInvalidEvent?: (error: HangarError, event: string) => void;
}

/**
 * One client of the app core's API over any transport: the window (a MessagePort), web mode (a
 * WebSocket) and the hangar command all hold one. Calls and events are CORE_PROCEDURES and
 * CORE_EVENTS through a ControlClient, which checks params, results and events with the tables.
 */
export class CoreApiClient extends MuxCoreApi {
  constructor(transport: FrameTransport, options: CoreApiClientOptions = {}) {
    const mux = new Mux(transport, { ...options.mux, role: 'client' });
    super(
      mux,
      new ControlClient(mux, CORE_PROCEDURES, CORE_EVENTS, {
        peer: options.peer ?? 'the Hangar core',
        ...(options.onInvalidEvent ? { onInvalidEvent: options.onInvalidEvent } : {}),
      }),
    );
  }
}
