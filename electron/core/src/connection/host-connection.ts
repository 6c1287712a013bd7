import {
  ControlClient,
  Emitter,
  EventHub,
  HangarError,
  HOST_EVENTS,
  HOST_PROCEDURES,
  Mux,
  toDisposable,
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
import { z } from 'zod';
import { connectToHost, type ConnectedHost } from '../link/connect.js';
import { pathRank } from '../relay/reach.js';
import { retireLink, roundTrip } from './link-lifetime.js';

/** A link as a dial makes it: the address it used and, for a fallback's, how it runs. */
type DialedLink = ConnectedHost & { address: string; path?: () => { kind: string; rtt_ms: number | null } };

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
  dial?: () => Promise<DialedLink>;
  /**
   * A better path than `current` (the live link's path kind), or undefined when none is better now
   * (the core's HostReach.better). Without it a link stays on the path it was made on.
   */
  better?: (current: string | undefined) => Promise<DialedLink | undefined>;
  /** The dial found no such host (an account host that went): the owner forgets this connection. */
  onNotFound?: () => void;
  /** The waits before each look for a better path, the last repeated (default 10 s, 15 s, then 20 s). */
  upgradeDelaysMs?: readonly number[];
}

/** Backoff after a dropped link: quick first retry (a blip), capped so a sleeping laptop recovers fast. */
const RECONNECT_DELAYS_MS = [100, 250, 500, 1000, 2000, 3000];
/**
 * While a link runs through the relay (or TURN), a better path is looked for after these delays,
 * the last repeated: soon after the link was made (a host whose firewall just opened), then every
 * 20 s, each attempt bounded by its dials (3 s of address probes, a WebRTC attempt). Tailscale
 * looks once a minute (upgradeUDPDirectInterval); a user waiting on a slow splice is worth more.
 */
const UPGRADE_DELAYS_MS: readonly number[] = [10_000, 15_000, 20_000];

/** HANGAR_UPGRADE_DELAY_MS: the wait before every upgrade attempt, in place of the delays above. */
export const UPGRADE_DELAY_ENV = 'HANGAR_UPGRADE_DELAY_MS';
const upgradeDelaySchema = z.coerce.number().int().min(100).max(600_000);

/**
 * The upgrade's delays from the environment: the defaults when the variable is unset or empty, else
 * its one delay, repeated (a network whose firewall is known to open soon; the tests that watch an
 * upgrade happen). A value that is not a whole number of milliseconds from 100 to 600000 is an
 * error naming the variable, not a default in silence.
 */
export function upgradeDelaysFromEnv(env: NodeJS.ProcessEnv = process.env): readonly number[] {
  const value = env[UPGRADE_DELAY_ENV];
  if (value === undefined || value.trim() === '') return UPGRADE_DELAYS_MS;
  const parsed = upgradeDelaySchema.safeParse(value.trim());
  if (!parsed.success) {
    throw new Error(
      `${UPGRADE_DELAY_ENV} must be a whole number of milliseconds from 100 to 600000 (the wait before each path upgrade attempt), not ${JSON.stringify(value)}`,
    );
  }
  return [parsed.data];
}
/** The round trip is measured when a link comes up and this often while it is held open. */
const RTT_INTERVAL_MS = 10_000;
/** A ping not answered within this long leaves the last round trip as it was (the heartbeat judges liveness). */
const RTT_TIMEOUT_MS = 2_000;
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
  /** The live link's TCP peer, when it is a TCP connection of ours to the host (lanes go there). */
  private linkTcp: { mux: Mux; host: string; port: number } | undefined;
  /** The live link's round trip by the mux's ping, ms (null until measured). */
  private measuredRtt: number | null = null;
  private rttTimer: NodeJS.Timeout | undefined;
  private upgradeAttempt = 0;
  private upgradeTimer: NodeJS.Timeout | undefined;
  private upgrading = false;
  /** Links moved off, still finishing their streams and calls. */
  private readonly retiring = new Set<Disposable>();

  private readonly statusEmitter = new Emitter<HostStatus>();
  readonly onStatus = this.statusEmitter.event;
  private readonly linkEmitter = new Emitter<Mux>();
  /** A new link is up (first connect or a reconnect). */
  readonly onLink = this.linkEmitter.event;
  private readonly linkLostEmitter = new Emitter<CloseReason>();
  readonly onLinkLost = this.linkLostEmitter.event;
  private readonly firstRoundTripEmitter = new Emitter<number>();
  /**
   * A link's first round trip is measured (just after it came up or the connection moved to it):
   * its path is shown with the RTT from now on. Later measurements (every RTT_INTERVAL_MS) say nothing.
   */
  readonly onFirstRoundTrip = this.firstRoundTripEmitter.event;
  private readonly events = new EventHub<typeof HOST_EVENTS>();
  /**
   * Holders of watchPorts(): each link tells the agent whether any is held (preview.watch, as it
   * comes), and the link in use is told when that changes.
   */
  private portWatchers = 0;

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

  /**
   * How the current link runs (`p2p`, `turn`, `relayed`; `direct` for TLS to the host's address)
   * and its round trip: the transport's own figure when it has one, else the mux's ping.
   */
  get path(): { kind: string; rtt_ms: number | null } | undefined {
    if (!this.mux || this.mux.closed) return undefined;
    const path = this.linkPath?.() ?? { kind: 'direct', rtt_ms: null };
    return { kind: path.kind, rtt_ms: path.rtt_ms ?? this.measuredRtt };
  }

  /**
   * Where lanes beside `mux` go (lane/PROTOCOL.md): the address and port its TCP connection
   * reached, when `mux` is the live link and that link is a direct TCP connection; else undefined.
   */
  laneTarget(mux: Mux): { host: string; port: number } | undefined {
    const tcp = this.linkTcp;
    return tcp !== undefined && tcp.mux === mux && !mux.closed ? { host: tcp.host, port: tcp.port } : undefined;
  }

  /** Measures the live link's round trip now (at most 2 s); null when there is no link or no answer. */
  async measureRtt(): Promise<number | null> {
    const mux = this.mux;
    if (!mux || mux.closed) return null;
    let rtt: number | null;
    try {
      rtt = await roundTrip(mux, RTT_TIMEOUT_MS);
    } catch (error) {
      this.options.logger.debug({ host: this.host.name, err: toHangarError(error) }, 'ping failed');
      return null;
    }
    if (this.mux !== mux || rtt === null) return null;
    const first = this.measuredRtt === null;
    this.measuredRtt = rtt;
    if (first) this.firstRoundTripEmitter.fire(rtt);
    return rtt;
  }

  /** Keeps the link up (reconnecting on drops) until the returned disposable is disposed. */
  retain(): Disposable {
    this.retainers++;
    this.scheduleUpgrade();
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
    try {
      return await this.client!.call(method, params);
    } catch (error) {
      throw this.withHostName(error);
    }
  }

  /**
   * The agent says "no session named … on this host": it does not know the name this computer
   * gives it. The user is told which host, and how to list what runs there.
   */
  private withHostName(error: unknown): unknown {
    const failure = toHangarError(error);
    const session = failure.details?.['name'];
    if (failure.code !== 'E_SESSION_NOT_FOUND' || typeof session !== 'string') return error;
    const host = this.host.name;
    return new HangarError(
      'E_SESSION_NOT_FOUND',
      `no session named "${session}" on host "${host}"; list its sessions with: hangar session ls ${host}`,
      failure.details,
    );
  }

  /**
   * Events the host publishes (HOST_EVENTS), validated; a listener stays through reconnects. A
   * previews.changed listener also watches the host's ports while it lives (watchPorts()), unless
   * `watchPorts: false`: it hears only of previews added and removed.
   */
  on<K extends HostEvent>(
    event: K,
    listener: (data: EventData<typeof HOST_EVENTS, K>) => void,
    options: { watchPorts?: boolean } = {},
  ): Disposable {
    const subscription = this.events.on(event, listener);
    if (event !== 'previews.changed' || options.watchPorts === false) return subscription;
    const watch = this.watchPorts();
    return toDisposable(() => {
      void watch.dispose();
      void subscription.dispose();
    });
  }

  /**
   * Has the host look for dev servers that start or stop listening (previews.changed tells) until
   * the returned disposable is disposed: the agent looks only while a linked client watches. Kept
   * through reconnects and moves to a better path (each new link says so again).
   */
  watchPorts(): Disposable {
    if (++this.portWatchers === 1) this.tellPortWatch(true);
    let released = false;
    return toDisposable(() => {
      if (released) return;
      released = true;
      if (--this.portWatchers === 0) this.tellPortWatch(false);
    });
  }

  /** Tells the live link's agent whether this client watches; without a link, the next link says so. */
  private tellPortWatch(watch: boolean, client = this.client, mux = this.mux): void {
    if (!client || !mux || mux.closed) return;
    client.call('preview.watch', { watch }).catch((error: unknown) =>
      // An agent from before preview.watch refuses it (E_BAD_REQUEST, unknown method), and watches
      // for every linked client anyway: the window sees new dev servers all the same.
      this.options.logger.debug({ host: this.host.name, err: toHangarError(error) }, 'preview.watch failed'),
    );
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
      const connected: ConnectedHost & Partial<Pick<DialedLink, 'address' | 'path'>> = this.options.dial
        ? await this.options.dial()
        : await connectToHost({
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
      const mux = this.adopt(connected);
      this.reconnectAttempt = 0;
      this.failedSinceOnline = false;
      this.setStatus('online');
      this.linkEmitter.fire(mux);
      this.upgradeAttempt = 0;
      this.scheduleUpgrade();
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

  /** Makes `connected` the live link: its mux, a control client on it, its path; measures its round trip. */
  private adopt(connected: ConnectedHost & Partial<Pick<DialedLink, 'address' | 'path'>>): Mux {
    if (typeof connected.address === 'string') {
      this.record = {
        ...this.record,
        address: connected.address,
        agent_key: connected.agent_key,
        cert_fingerprint: connected.cert_fingerprint,
      };
    }
    this.hostInfo = connected.host;
    this.linkPath = connected.path;
    this.measuredRtt = null;
    const mux = new Mux(connected.transport, { role: 'client' });
    this.mux = mux;
    // A fallback's link (relay splice, WebRTC) has a path of its own: no lanes beside it.
    this.linkTcp = connected.tcp !== undefined && connected.path === undefined ? { mux, ...connected.tcp } : undefined;
    // Subscribed before the client: when the link drops, our status changes before its calls fail.
    mux.onClose((reason) => this.onMuxClosed(mux, reason));
    this.client = new ControlClient(mux, HOST_PROCEDURES, HOST_EVENTS, {
      peer: `host "${this.host.name}"`,
      timeoutMs: this.options.requestTimeoutMs ?? 30_000,
      hub: this.events,
      onInvalidEvent: (error, event) =>
        this.options.logger.warn({ err: error, host: this.host.name, event }, 'dropped an invalid event'),
    });
    // Said on every link, watching or not: an agent takes a link that never says for an older
    // core's, and watches for it (PreviewService.linked).
    this.tellPortWatch(this.portWatchers > 0);
    this.scheduleRtt(0);
    return mux;
  }

  private scheduleRtt(delayMs: number): void {
    clearTimeout(this.rttTimer);
    this.rttTimer = setTimeout(() => {
      this.rttTimer = undefined;
      if (this.disposed || !this.mux || this.mux.closed) return;
      void this.measureRtt().finally(() => {
        if (this.retainers > 0) this.scheduleRtt(RTT_INTERVAL_MS);
      });
    }, delayMs);
    // A measurement is never a reason for the process to stay up (a command's core exits when done).
    this.rttTimer.unref();
  }

  /** While the live link is held open on a path worse than TLS at an address, looks for a better one later. */
  private scheduleUpgrade(): void {
    if (this.upgradeTimer || this.upgrading || this.disposed || !this.options.better) return;
    if (this.retainers === 0 || !this.mux || this.mux.closed || pathRank(this.path?.kind) === 0) return;
    const delays = this.options.upgradeDelaysMs ?? UPGRADE_DELAYS_MS;
    const delay = delays[Math.min(this.upgradeAttempt, delays.length - 1)]!;
    this.upgradeAttempt++;
    this.upgradeTimer = setTimeout(() => {
      this.upgradeTimer = undefined;
      void this.tryUpgrade();
    }, delay);
    this.upgradeTimer.unref();
  }

  private async tryUpgrade(): Promise<void> {
    const mux = this.mux;
    const from = this.path?.kind;
    if (this.disposed || this.retainers === 0 || !mux || mux.closed || pathRank(from) === 0) return;
    this.upgrading = true;
    let better: DialedLink | undefined;
    try {
      better = await this.options.better!(from);
    } catch (error) {
      this.options.logger.debug({ host: this.host.name, err: toHangarError(error) }, 'no better path yet');
    } finally {
      this.upgrading = false;
    }
    if (better === undefined) {
      this.scheduleUpgrade();
      return;
    }
    // The link dropped, was replaced or let go meanwhile: the reconnect has its own dial.
    if (this.disposed || this.mux !== mux || mux.closed || better.agent_key !== this.record.agent_key) {
      better.transport.close({ code: 'closed', message: 'the link it would replace is gone' });
      this.scheduleUpgrade();
      return;
    }
    this.moveTo(better, mux);
  }

  /**
   * Moves to a better link without the user noticing: it becomes the live link (calls go on it
   * from now), onLink fires so terminals resume on it from the offset they have (TerminalClient:
   * nothing lost or doubled), and the old link is closed once its streams and calls are done.
   */
  private moveTo(better: DialedLink, old: Mux): void {
    const oldClient = this.client!;
    const from = this.path?.kind;
    const mux = this.adopt(better);
    this.options.logger.info(
      { host: this.host.name, from, to: this.path?.kind, address: better.address },
      'moved the link to a better path',
    );
    this.linkEmitter.fire(mux);
    this.retire(old, oldClient);
    this.upgradeAttempt = 0;
    this.scheduleUpgrade();
  }

  private retire(mux: Mux, client: HostClient): void {
    const retiring = retireLink(
      mux,
      () => client.pendingCount,
      () => {
        this.retiring.delete(retiring);
        client.dispose();
      },
    );
    this.retiring.add(retiring);
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
    clearTimeout(this.upgradeTimer);
    clearTimeout(this.rttTimer);
    for (const retiring of [...this.retiring]) void retiring.dispose();
    this.mux?.close({ code: 'closed', message: 'client closed the connection' });
    this.client?.dispose();
    this.mux = undefined;
    this.statusEmitter.dispose();
    this.linkEmitter.dispose();
    this.linkLostEmitter.dispose();
    this.firstRoundTripEmitter.dispose();
    this.events.dispose();
  }
}

/** Key and auth failures are final (retrying cannot fix them); network trouble is not. */
function isTransient(error: HangarError): boolean {
  return error.code === 'E_HOST_UNREACHABLE' || error.code === 'E_TIMEOUT' || error.code === 'E_UNAVAILABLE';
}
