import {
  ControlClient,
  Emitter,
  EventHub,
  HangarError,
  HOST_EVENTS,
  HOST_PROCEDURES,
  Mux,
  toHangarError,
  type CloseReason,
  type Disposable,
  type EventData,
  type HostEvent,
  type HostInfo,
  type HostMethod,
  type HostParams,
  type HostRecord,
  type HostResult,
  type HostStatus,
} from '@hangar/shared';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { connectToHost, type ConnectedHost } from '../link/connect.js';

export interface HostConnectionOptions {
  deviceKey: KeyObject;
  deviceName: string;
  logger: Logger;
  /** Per call; a host that does not answer within it is treated as unreachable for that call. */
  requestTimeoutMs?: number;
  /**
   * How to make the link (the core's HostReach: a paired host with its pins, an account host's first
   * link); it says the address it used. Default: connectToHost at host.address with its pins.
   */
  dial?: () => Promise<ConnectedHost & { address: string; path?: () => { kind: string; rtt_ms: number | null } }>;
  /** The dial found no such host (an account host that went): the owner forgets this connection. */
  onNotFound?: () => void;
}

/** Backoff after a dropped link: quick first retry (a blip), capped so a sleeping laptop recovers fast. */
const RECONNECT_DELAYS_MS = [100, 250, 500, 1000, 2000, 3000];

type HostClient = ControlClient<typeof HOST_PROCEDURES, typeof HOST_EVENTS>;

/**
 * One authenticated link to one host, with shared's ControlClient on its control stream (one
 * per link; the event listeners live here and survive reconnects). While anyone holds it open
 * (`retain()`), a dropped link is re-established with backoff and `onLink` fires again so
 * terminals can resume.
 */
export class HostConnection implements Disposable {
  private mux: Mux | undefined;
  private client: HostClient | undefined;
  private connecting: Promise<Mux> | undefined;
  private retainers = 0;
  private reconnectAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private statusValue: HostStatus = 'offline';
  /** A connect attempt failed and none has succeeded since. */
  private failedSinceOnline = false;
  private hostInfo: HostInfo | undefined;
  private linkPath: (() => { kind: string; rtt_ms: number | null }) | undefined;

  private readonly statusEmitter = new Emitter<HostStatus>();
  readonly onStatus = this.statusEmitter.event;
  private readonly linkEmitter = new Emitter<Mux>();
  /** A new link is up (first connect or a reconnect). */
  readonly onLink = this.linkEmitter.event;
  private readonly linkLostEmitter = new Emitter<CloseReason>();
  readonly onLinkLost = this.linkLostEmitter.event;
  private readonly events = new EventHub<typeof HOST_EVENTS>();

  private record: HostRecord;

  constructor(
    host: HostRecord,
    private readonly options: HostConnectionOptions,
  ) {
    this.record = host;
    // Registered first, so that every other listener of host.info already sees the new info.
    this.events.on('host.info', (info) => {
      this.hostInfo = info;
    });
  }

  /** The host as last linked: its address is where the last link was made. */
  get host(): HostRecord {
    return this.record;
  }

  get status(): HostStatus {
    return this.statusValue;
  }

  get info(): HostInfo | undefined {
    return this.hostInfo;
  }

  /** How the current link runs when it is not TLS to the host's address (`p2p`, `turn`) and its round trip. */
  get path(): { kind: string; rtt_ms: number | null } | undefined {
    return this.mux && !this.mux.closed ? this.linkPath?.() : undefined;
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
    await this.link();
    return this.client!.call(method, params);
  }

  /** Events the host publishes (HOST_EVENTS), validated; a listener stays through reconnects. */
  on<K extends HostEvent>(event: K, listener: (data: EventData<typeof HOST_EVENTS, K>) => void): Disposable {
    return this.events.on(event, listener);
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
      const connected: ConnectedHost & { path?: 'relayed' } = this.options.dial
        ? await this.options.dial()
        : await connectToHost({
            address: this.host.address,
            deviceKey: this.options.deviceKey,
            deviceName: this.options.deviceName,
            pinned: { agent_key: this.host.agent_key, cert_fingerprint: this.host.cert_fingerprint },
            hostName: this.host.name,
          });
      if ('address' in connected && typeof connected.address === 'string') {
        this.record = {
          ...this.record,
          address: connected.address,
          agent_key: connected.agent_key,
          cert_fingerprint: connected.cert_fingerprint,
        };
      }
      if (this.disposed) {
        connected.transport.close({ code: 'closed', message: 'connection disposed' });
        throw new HangarError('E_UNAVAILABLE', `connection to "${this.host.name}" was closed`);
      }
      this.hostInfo = connected.host;
      this.linkPath = 'path' in connected ? (connected.path as typeof this.linkPath) : undefined;
      const mux = new Mux(connected.transport, { role: 'client' });
      this.mux = mux;
      // Subscribed before the client: when the link drops, our status changes before its calls fail.
      mux.onClose((reason) => this.onMuxClosed(mux, reason));
      this.client = new ControlClient(mux, HOST_PROCEDURES, HOST_EVENTS, {
        peer: `host "${this.host.name}"`,
        timeoutMs: this.options.requestTimeoutMs ?? 30_000,
        hub: this.events,
        onInvalidEvent: (error, event) =>
          this.options.logger.warn({ err: error, host: this.host.name, event }, 'dropped an invalid event'),
      });
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
      if (failure.code === 'E_HOST_NOT_FOUND') this.options.onNotFound?.();
      throw failure;
    }
  }

  private onMuxClosed(mux: Mux, reason: CloseReason): void {
    if (this.mux !== mux) return;
    this.mux = undefined;
    this.options.logger.info({ host: this.host.name, reason }, 'link closed');
    // The client rejects its pending calls itself (it listens to the same close).
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
    this.client?.dispose();
    this.mux = undefined;
    this.statusEmitter.dispose();
    this.linkEmitter.dispose();
    this.linkLostEmitter.dispose();
    this.events.dispose();
  }
}

/** Key and auth failures are final (retrying cannot fix them); network trouble is not. */
function isTransient(error: HangarError): boolean {
  return error.code === 'E_HOST_UNREACHABLE' || error.code === 'E_TIMEOUT' || error.code === 'E_UNAVAILABLE';
}
