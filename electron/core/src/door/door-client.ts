import {
  ControlCalls,
  CoreTerminal,
  ERROR_CODES,
  HangarError,
  Mux,
  SCHEMA_VERSION,
  type CallOptions,
  type CloseReason,
  type ControlChecks,
  type ControlMessage,
  type CORE_EVENTS,
  type CoreApi,
  type CoreCallParams,
  type CoreCallResult,
  type CoreEvent,
  type CoreEventData,
  type CoreMethod,
  type Disposable,
  type FrameTransport,
  type LinkStream,
  type OpenStreamOptions,
  type TerminalHandle,
  type TerminalSink,
  type TerminalTarget,
} from '@hangar/shared';

export interface DoorClientOptions {
  /** The core in words, for errors. */
  peer: string;
}

/**
 * The hangar command's client of a running core through its local door, when that core's
 * protocolFingerprint() is the one this command was built with: the same CORE_PROCEDURES and
 * CORE_EVENTS on both ends. That core parses every call's params with the table (a bad one comes
 * back as E_BAD_REQUEST naming the field, as CoreApiClient would have said it) and checks every
 * result and event against it before sending, so this side checks only the control messages'
 * frame and loads no schema: zod and the tables are most of a short command's start-up (issue 18).
 * A core of any other build gets a CoreApiClient, which checks everything.
 */
export class DoorClient implements CoreApi {
  readonly mux: Mux;
  private readonly control: DoorCalls;

  constructor(transport: FrameTransport, options: DoorClientOptions) {
    this.mux = new Mux(transport, { role: 'client' });
    this.control = new DoorCalls(this.mux, TRUSTED_CORE, { peer: options.peer });
  }

  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>, options?: CallOptions): Promise<CoreCallResult<M>> {
    return this.control.call(method, params, options);
  }

  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable {
    return this.control.on(event, listener);
  }

  /** As CoreApiClient's: the caller acks what it has consumed. */
  openStream(options?: OpenStreamOptions): LinkStream {
    const stream = this.mux.openStream(options);
    stream.autoAck = false;
    return stream;
  }

  /** A session's terminal through the door, as CoreApiClient's. */
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

class DoorCalls extends ControlCalls<typeof CORE_EVENTS> {
  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>, options?: CallOptions): Promise<CoreCallResult<M>> {
    return this.send(method, params, options) as Promise<CoreCallResult<M>>;
  }
}

/** A core of this build checked params, results and events with the tables: only the messages' frame is checked here. */
const TRUSTED_CORE: ControlChecks = {
  params: (_method, params) => params,
  result: (_method, raw) => raw,
  message: controlMessage,
  event: (_event, data) => ({ data }),
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A control message's frame, as protocol/control.ts's ControlMessage has it (the payloads are the core's to check). */
function controlMessage(value: unknown): ControlMessage {
  const bad = (why: string) => new HangarError('E_PROTOCOL', why);
  if (!isRecord(value)) throw bad('not an object');
  if (value['schema_version'] !== SCHEMA_VERSION)
    throw bad(`schema_version must be ${SCHEMA_VERSION}; update Hangar on both ends`);
  const { kind } = value;
  if (kind === 'response') {
    const { id, ok, error } = value;
    if (!Number.isSafeInteger(id) || (id as number) < 0) throw bad('id: not a request id');
    if (ok === true) return value as ControlMessage;
    if (ok !== false) throw bad('ok: not a boolean');
    if (!isRecord(error)) throw bad('error: not an object');
    if (!(ERROR_CODES as readonly unknown[]).includes(error['code'])) throw bad('error.code: not an error code');
    if (typeof error['message'] !== 'string') throw bad('error.message: not a string');
    if (error['details'] !== undefined && !isRecord(error['details'])) throw bad('error.details: not an object');
    return value as ControlMessage;
  }
  if (kind === 'event' && typeof value['event'] === 'string') return value as ControlMessage;
  if (kind === 'request' && typeof value['method'] === 'string') return value as ControlMessage;
  throw bad('not a response, an event or a request');
}
