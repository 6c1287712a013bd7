import {
  ControlMessage,
  Emitter,
  HangarError,
  HOST_PROCEDURES,
  Mux,
  SCHEMA_VERSION,
  parseOrThrow,
  toHangarError,
  type CloseReason,
  type Disposable,
  type HostInfo,
  type HostMethod,
  type HostParams,
  type HostRecord,
  type HostResult,
} from '@hangar/shared';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { connectToHost } from '../link/connect.js';

export type HostStatus = 'connecting' | 'online' | 'offline';

export interface HostConnectionOptions {
  deviceKey: KeyObject;
  deviceName: string;
  logger: Logger;
  /** Per call; a host that does not answer within it is treated as unreachable for that call. */
  requestTimeoutMs?: number;
}

interface Pending {
  method: HostMethod;
  resolve: (value: unknown) => void;
  reject: (error: HangarError) => void;
  timer: NodeJS.Timeout;
}

/** Backoff after a dropped link: quick first retry (a blip), capped so a sleeping laptop recovers fast. */
const RECONNECT_DELAYS_MS = [100, 250, 500, 1000, 2000, 3000];

/**
 * One authenticated link to one host, with request/response over the control stream.
 * While anyone holds it open (`retain()`), a dropped link is re-established with backoff and
 * `onLink` fires again so terminals can resume.
 */
export class HostConnection implements Disposable {
  private mux: Mux | undefined;
  private connecting: Promise<Mux> | undefined;
  private nextRequestId = 1;
  private readonly pending = new Map<number, Pending>();
  private retainers = 0;
  private reconnectAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private statusValue: HostStatus = 'offline';
  /** A connect attempt failed and none has succeeded since. */
  private failedSinceOnline = false;
  private hostInfo: HostInfo | undefined;

  private readonly statusEmitter = new Emitter<HostStatus>();
  readonly onStatus = this.statusEmitter.event;
  private readonly linkEmitter = new Emitter<Mux>();
  /** A new link is up (first connect or a reconnect). */
  readonly onLink = this.linkEmitter.event;
  private readonly linkLostEmitter = new Emitter<CloseReason>();
  readonly onLinkLost = this.linkLostEmitter.event;
  private readonly eventEmitter = new Emitter<{ event: string; data: unknown }>();
  /** Events the host publishes (e.g. `job.updated`); validate `data` with its schema in shared. */
  readonly onEvent = this.eventEmitter.event;

  constructor(
    readonly host: HostRecord,
    private readonly options: HostConnectionOptions,
  ) {}

  get status(): HostStatus {
    return this.statusValue;
  }

  get info(): HostInfo | undefined {
    return this.hostInfo;
  }

  /** Keeps the link up (reconnecting on drops) until the returned disposable is disposed. */
  retain(): Disposable {
    this.retainers++;
    let released = false;
    return {
      dispose: () => {
        if (released) return;
        released = true;
        this.retainers--;
      },
    };
  }

  /** The current link, connecting first if needed. Rejects with the reason the host can't be reached. */
  async link(): Promise<Mux> {
    if (this.disposed) throw new HangarError('E_UNAVAILABLE', `connection to "${this.host.name}" was closed`);
    if (this.mux && !this.mux.closed) return this.mux;
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  async call<M extends HostMethod>(method: M, params: HostParams<M>): Promise<HostResult<M>> {
    const spec = HOST_PROCEDURES[method];
    // Validate on the way out too: a bad call is reported here, with the field, not by the host.
    const checked = parseOrThrow(spec.params, params, method);
    const mux = await this.link();
    const id = this.nextRequestId++;
    const timeoutMs = this.options.requestTimeoutMs ?? 30_000;
    const raw = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new HangarError(
            'E_TIMEOUT',
            `host "${this.host.name}" did not answer ${method} within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
      mux.sendControl(JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id, method, params: checked }));
    });
    return parseOrThrow(spec.result, raw, `${method} result from "${this.host.name}"`) as HostResult<M>;
  }

  private setStatus(status: HostStatus): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    this.statusEmitter.fire(status);
  }

  private async connect(): Promise<Mux> {
    // 'connecting' until the first verdict; a host that failed stays 'offline' while we retry,
    // instead of flipping offline ⇄ connecting (and a hosts.changed) at every attempt.
    if (!this.failedSinceOnline) this.setStatus('connecting');
    try {
      const connected = await connectToHost({
        address: this.host.address,
        deviceKey: this.options.deviceKey,
        deviceName: this.options.deviceName,
        pinned: { agent_key: this.host.agent_key, cert_fingerprint: this.host.cert_fingerprint },
        hostName: this.host.name,
      });
      if (this.disposed) {
        connected.transport.close({ code: 'closed', message: 'connection disposed' });
        throw new HangarError('E_UNAVAILABLE', `connection to "${this.host.name}" was closed`);
      }
      this.hostInfo = connected.host;
      const mux = new Mux(connected.transport, { role: 'client' });
      this.mux = mux;
      mux.onControl((json) => this.onControl(json));
      mux.onClose((reason) => this.onMuxClosed(mux, reason));
      this.reconnectAttempt = 0;
      this.failedSinceOnline = false;
      this.setStatus('online');
      this.linkEmitter.fire(mux);
      return mux;
    } catch (error) {
      this.failedSinceOnline = true;
      this.setStatus('offline');
      let failure = toHangarError(error);
      if (this.host.embedded && failure.code === 'E_HOST_UNREACHABLE') {
        failure = new HangarError(
          'E_HOST_UNREACHABLE',
          `host "${this.host.name}" is this machine's embedded agent, and it is not running; start it with: npm start (or: npx hangar up)`,
        );
      }
      if (this.retainers > 0 && isTransient(failure)) this.scheduleReconnect();
      throw failure;
    }
  }

  private onControl(json: string): void {
    let message: ControlMessage;
    try {
      message = parseOrThrow(ControlMessage, JSON.parse(json), 'control message');
    } catch (error) {
      this.options.logger.warn({ err: toHangarError(error), host: this.host.name }, 'dropping bad control message');
      return;
    }
    if (message.kind === 'event') {
      this.eventEmitter.fire({ event: message.event, data: message.data });
      return;
    }
    if (message.kind !== 'response') return;
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(HangarError.from(message.error));
  }

  private onMuxClosed(mux: Mux, reason: CloseReason): void {
    if (this.mux !== mux) return;
    this.mux = undefined;
    this.options.logger.info({ host: this.host.name, reason }, 'link closed');
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(
        new HangarError(
          'E_UNAVAILABLE',
          `link to "${this.host.name}" dropped during ${pending.method}: ${reason.message}`,
        ),
      );
      this.pending.delete(id);
    }
    this.setStatus('offline');
    this.linkLostEmitter.fire(reason);
    if (!this.disposed && this.retainers > 0) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.disposed) return;
    const delay = RECONNECT_DELAYS_MS[Math.min(this.reconnectAttempt, RECONNECT_DELAYS_MS.length - 1)]!;
    this.reconnectAttempt++;
    if (!this.failedSinceOnline) this.setStatus('connecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.disposed || this.retainers === 0) return;
      this.link().catch((error: unknown) => {
        this.options.logger.debug({ host: this.host.name, err: toHangarError(error) }, 'reconnect failed');
      });
    }, delay);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.mux?.close({ code: 'closed', message: 'client closed the connection' });
    this.mux = undefined;
    this.statusEmitter.dispose();
    this.linkEmitter.dispose();
    this.linkLostEmitter.dispose();
    this.eventEmitter.dispose();
  }
}

/** Key and auth failures are final (retrying cannot fix them); network trouble is not. */
function isTransient(error: HangarError): boolean {
  return error.code === 'E_HOST_UNREACHABLE' || error.code === 'E_TIMEOUT' || error.code === 'E_UNAVAILABLE';
}
