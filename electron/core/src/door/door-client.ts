import {
  ControlCalls,
  ERROR_CODES,
  HangarError,
  Mux,
  MuxCoreApi,
  SCHEMA_VERSION,
  type CallOptions,
  type ControlChecks,
  type ControlMessage,
  type CORE_EVENTS,
  type CoreCallParams,
  type CoreCallResult,
  type CoreMethod,
  type FrameTransport,
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
export class DoorClient extends MuxCoreApi {
  constructor(transport: FrameTransport, options: DoorClientOptions) {
    const mux = new Mux(transport, { role: 'client' });
    super(mux, new DoorCalls(mux, TRUSTED_CORE, { peer: options.peer }));
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
