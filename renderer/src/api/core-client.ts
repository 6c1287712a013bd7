import {
  CORE_EVENTS,
  CORE_PROCEDURES,
  ControlMessage,
  Emitter,
  HangarError,
  Mux,
  SCHEMA_VERSION,
  toHangarError,
  visibleText,
  type CloseReason,
  type CoreEvent,
  type CoreMethod,
  type CoreParams,
  type CoreResult,
  type Disposable,
  type FrameTransport,
  type LinkStream,
} from '@hangar/shared';

export type CoreEventData<E extends CoreEvent> = (typeof CORE_EVENTS)[E]['_zod']['output'];

/** What views need from the core. Component tests pass a stand-in. */
export interface CoreApi {
  call<M extends CoreMethod>(method: M, params: CoreParams<M>): Promise<CoreResult<M>>;
  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable;
  /** A stream of ours for terminal output or a job log; the caller acks what it has rendered. */
  openStream(): LinkStream;
  onDisconnect(listener: (reason: CloseReason) => void): Disposable;
}

interface Pending {
  method: CoreMethod;
  resolve(value: unknown): void;
  reject(error: HangarError): void;
}

/** Requests, responses and events on the control stream of one link to the core. */
export class CoreClient implements CoreApi, Disposable {
  private readonly mux: Mux;
  private readonly pending = new Map<number, Pending>();
  private readonly events = new Map<string, Emitter<unknown>>();
  private readonly disconnects = new Emitter<CloseReason>();
  private nextId = 1;

  constructor(transport: FrameTransport) {
    this.mux = new Mux(transport, { role: 'client' });
    this.mux.onControl((json) => this.receive(json));
    this.mux.onClose((reason) => {
      const error = new HangarError('E_UNAVAILABLE', `lost the connection to the Hangar core: ${reason.message}`);
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
      this.disconnects.fire(reason);
    });
  }

  call<M extends CoreMethod>(method: M, params: CoreParams<M>): Promise<CoreResult<M>> {
    const id = this.nextId++;
    return new Promise<CoreResult<M>>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (value: unknown) => void, reject });
      try {
        this.mux.sendControl(JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id, method, params }));
      } catch (error) {
        this.pending.delete(id);
        reject(toHangarError(error));
      }
    });
  }

  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable {
    let emitter = this.events.get(event);
    if (!emitter) {
      emitter = new Emitter<unknown>();
      this.events.set(event, emitter);
    }
    return emitter.event(listener as (data: unknown) => void);
  }

  openStream(): LinkStream {
    const stream = this.mux.openStream();
    stream.autoAck = false;
    return stream;
  }

  onDisconnect(listener: (reason: CloseReason) => void): Disposable {
    return this.disconnects.event(listener);
  }

  dispose(): void {
    this.mux.close({ code: 'closed', message: 'the window closed' });
  }

  private receive(json: string): void {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (error) {
      this.mux.close({
        code: 'E_PROTOCOL',
        message: `the core sent a control message that is not JSON: ${describeError(error)}`,
      });
      return;
    }
    const parsed = ControlMessage.safeParse(value);
    if (!parsed.success) {
      this.mux.close({ code: 'E_PROTOCOL', message: `the core sent an invalid control message` });
      return;
    }
    const message = parsed.data;
    if (message.kind === 'response') {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (!message.ok) {
        pending.reject(new HangarError(message.error.code, message.error.message, message.error.details));
        return;
      }
      const result = CORE_PROCEDURES[pending.method].result.safeParse(message.result);
      if (result.success) pending.resolve(result.data);
      else
        pending.reject(new HangarError('E_PROTOCOL', `the core answered ${pending.method} with an unexpected shape`));
    } else if (message.kind === 'event') {
      const schema = (CORE_EVENTS as Record<string, (typeof CORE_EVENTS)[CoreEvent]>)[message.event];
      const emitter = this.events.get(message.event);
      if (!schema || !emitter) return;
      const data = schema.safeParse(message.data);
      if (data.success) emitter.fire(data.data);
    }
  }
}

/** Human words for any failure, for the UI to show as is. */
/** An error's message for display; it may quote host text, so control characters are shown as escapes. */
export function describeError(error: unknown): string {
  return visibleText(toHangarError(error).message);
}
