import WebSocket from 'ws';
import {
  DisposableStore,
  Emitter,
  HangarError,
  RelayDeviceSocket,
  isHangarError,
  toHangarError,
  type DeviceEntry,
  type Disposable,
  type HostPresence,
  type TextSocketLike,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { AccountDevices } from './account-devices.js';
import { settleHostTrust, trustOwed } from './host-trust.js';
import type { RelayAccount } from './relay-account.js';

/**
 * The signed-in account's hosts as the relay describes them (name, keys, presence, the addresses
 * each host signed). A window's core (live) keeps a device socket open while signed in: presence
 * arrives as it changes, and a relay that goes away is noticed within 5 s: a closed socket at once,
 * a silent one (a network that drops packets) within about 4 s (a ping every 0.75 s, 3 s without a
 * word is a dead socket). The hangar command's own
 * core asks hosts.list when a listing needs it. Either way the last word is kept in the database
 * and shown, marked `relay_unreachable`, while the relay cannot be reached.
 */

/** A presence read that waits longer than this reports the relay unreachable instead. */
const READ_TIMEOUT_MS = 3_000;
const SOCKET_HEARTBEAT_MS = 750;
const SOCKET_DEAD_AFTER_MS = 3_000;
/** A new socket whose upgrade is not answered by then is given up (and dialed again later). */
const SOCKET_HANDSHAKE_MS = 10_000;
const SOCKET_BACKOFF = { initialMs: 500, maxMs: 10_000 };

export type AccountPresence = 'online' | 'offline' | 'relay_unreachable';

export interface AccountHost {
  host: HostPresence;
  presence: AccountPresence;
}

interface HeldSocket {
  key: string;
  socket: RelayDeviceSocket;
  store: DisposableStore;
  /** Why it last closed (the relay's close code and reason), until it is online again. */
  lastClose?: HangarError;
}

const wsFactory = (url: string) =>
  new WebSocket(url, { handshakeTimeout: SOCKET_HANDSHAKE_MS }) as unknown as TextSocketLike;

export class AccountHosts implements Disposable {
  private readonly hosts = new Map<string, HostPresence>();
  private loadedFor: string | undefined;
  private socket: HeldSocket | undefined;
  private live = false;
  /** A WebRTC dial needs the socket (signaling) even in a core without a UI door. */
  private signalingWanted = false;
  private readonly subscription: Disposable;
  private readonly changedEmitter = new Emitter<void>();
  /** A host of the account appeared, changed, went, or the relay's reachability changed. */
  readonly onChanged = this.changedEmitter.event;
  private readonly pendingEmitter = new Emitter<DeviceEntry>();
  /** A new device waits for approval (fired only while this device is a trusted one). */
  readonly onDevicePending = this.pendingEmitter.event;
  private readonly approvedEmitter = new Emitter<void>();
  /** A trusted device approved this one: hosts that refused it may now let it in. */
  readonly onApproved = this.approvedEmitter.event;

  constructor(
    private readonly account: RelayAccount,
    private readonly devices: AccountDevices,
    private readonly logger: Logger,
  ) {
    this.subscription = account.onChanged(() => {
      this.follow();
      this.changedEmitter.fire();
      this.settleOwedTrust();
    });
  }

  private settlingTrust = false;
  /** The core closed (a command's core exits as soon as it answered): a settle it cut short is no news. */
  private disposed = false;

  /**
   * The relay answers again (the socket connected, a call went through after it was away, or this
   * computer signed in or was approved): a vouch back that failed before is made now
   * (host-trust.ts trustOwed), once at a time; done, nothing is owed and nothing is called again.
   */
  private settleOwedTrust(): void {
    const reach = this.account.reachState;
    if (
      this.disposed ||
      this.settlingTrust ||
      (reach !== 'reachable' && reach !== 'connected') ||
      !trustOwed(this.account)
    )
      return;
    this.settlingTrust = true;
    void settleHostTrust(this.account)
      .then(
        () => {
          // The core closed meanwhile (its database with it): nothing to say, and nothing to read.
          if (this.disposed) return;
          if (!trustOwed(this.account)) this.logger.info('vouched for the computer that approved this one');
        },
        (error: unknown) => {
          // Cut short by the core closing (its database with it): still owed, settled at the next start.
          if (this.disposed) return;
          this.logger.warn(
            { err: toHangarError(error) },
            'could not vouch for the computer that approved this one; tried again when the relay answers again',
          );
        },
      )
      .finally(() => {
        this.settlingTrust = false;
      });
  }

  /** A UI door is up (this core is a window's, long-lived). */
  get isLive(): boolean {
    return this.live;
  }

  /** A UI door is up: keep a device socket to the relay while signed in. */
  goLive(): void {
    this.live = true;
    this.follow();
  }

  /**
   * The device socket, open and authenticated, to send signals through (a WebRTC dial). Opens it if
   * this core had none; when it is not ready within timeoutMs, E_RATE_LIMITED if the relay refused it
   * for this computer's many connections (close 4029), else E_UNAVAILABLE ("relay unreachable") with
   * why it last closed.
   */
  async signaling(timeoutMs = 5_000): Promise<RelayDeviceSocket> {
    this.signalingWanted = true;
    this.follow();
    const held = this.socket;
    const socket = held?.socket;
    if (socket === undefined) throw new HangarError('E_AUTH_REQUIRED', 'not signed in to a relay');
    if (socket.isReady) return socket;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        subscription.dispose();
        reject(this.noSignaling(held?.lastClose, timeoutMs));
      }, timeoutMs);
      const subscription = socket.onState(() => {
        if (!socket.isReady) return;
        clearTimeout(timer);
        subscription.dispose();
        resolve();
      });
    });
    return socket;
  }

  /** Why signaling() has no socket: the relay's refusal when it refused one, in words that say what to do. */
  private noSignaling(lastClose: HangarError | undefined, timeoutMs: number): HangarError {
    const relay = this.account.stored()?.relay_url ?? 'the relay';
    if (lastClose?.code === 'E_RATE_LIMITED') {
      return new HangarError(
        'E_RATE_LIMITED',
        `the relay at ${relay} refused this computer's signaling socket: ${lastClose.message}. ` +
          'Each running hangar command that dials through the relay holds one: let some end (or stop them) and try again',
        { relay_url: relay },
      );
    }
    const why = lastClose ? ` (${lastClose.message})` : '';
    return new HangarError(
      'E_UNAVAILABLE',
      `relay unreachable: no signaling socket to ${relay} within ${timeoutMs} ms${why}`,
    );
  }

  /**
   * The account's hosts with their presence. `fresh` (the hangar command's core): ask the relay now,
   * at most 3 s; a window's core has them from its socket already.
   */
  async list(options: { fresh?: boolean } = {}): Promise<AccountHost[]> {
    const account = this.account.stored();
    if (account === undefined) return [];
    this.load(account.account_id);
    if (options.fresh && !this.socket) await this.fetch(account.account_id);
    return this.current();
  }

  /** What this core knows now, without asking the relay. */
  current(): AccountHost[] {
    const account = this.account.stored();
    if (account === undefined) return [];
    this.load(account.account_id);
    const reach = this.account.reachState;
    const unreachable = reach === 'unreachable';
    return [...this.hosts.values()].map((host) => ({
      host,
      presence: unreachable ? 'relay_unreachable' : host.online ? 'online' : 'offline',
    }));
  }

  private load(accountId: string): void {
    if (this.loadedFor === accountId) return;
    this.hosts.clear();
    for (const host of this.account.store.cachedHosts(accountId)) this.hosts.set(host.host_id, host);
    this.loadedFor = accountId;
  }

  private async fetch(accountId: string): Promise<void> {
    try {
      const { hosts } = await this.account.call('hosts.list', {}, { timeoutMs: READ_TIMEOUT_MS });
      this.hosts.clear();
      for (const host of hosts) this.hosts.set(host.host_id, host);
      this.account.store.cacheHosts(accountId, hosts, Date.now());
    } catch (error) {
      // The relay is away (RelayAccount marked it unreachable): the cached word is shown, marked so.
      if (isHangarError(error) && ['E_UNAVAILABLE', 'E_TIMEOUT'].includes(error.code)) return;
      // This device waits for approval: the relay shows it none of the account's hosts until then.
      if (isHangarError(error) && error.code === 'E_FORBIDDEN') {
        this.hosts.clear();
        // Only a device the account does not trust is refused its host list (the relay's one rule).
        this.account.noteOwnStatus('pending');
        return;
      }
      throw error;
    }
  }

  /** A host removed from the account by this computer: gone here at once (the relay says so too). */
  forget(hostId: string): void {
    this.hosts.delete(hostId);
    this.account.store.forgetHost(hostId);
    this.changedEmitter.fire();
  }

  /** Opens, keeps or closes the device socket as the account and the doors require. */
  private follow(): void {
    const account = this.account.stored();
    const key = account ? `${account.relay_url} ${account.account_id} ${account.device_id}` : undefined;
    if (this.socket && this.socket.key !== key) {
      void this.socket.store.dispose();
      this.socket = undefined;
    }
    if (!(this.live || this.signalingWanted) || account === undefined || key === undefined || this.socket) return;
    this.load(account.account_id);
    const session = this.account.requireSession();
    const store = new DisposableStore();
    const socket = store.add(
      new RelayDeviceSocket({
        relayUrl: account.relay_url,
        signer: this.account.signer,
        socketFactory: wsFactory,
        accessToken: () => session.accessToken(),
        heartbeatMs: SOCKET_HEARTBEAT_MS,
        deadAfterMs: SOCKET_DEAD_AFTER_MS,
        backoff: SOCKET_BACKOFF,
      }),
    );
    const held: HeldSocket = { key, socket, store };
    this.socket = held;
    const accountId = account.account_id;
    store.add(
      socket.onState((state) => {
        if (state.state === 'offline') held.lastClose = state.error;
        if (state.state === 'online') {
          held.lastClose = undefined;
          this.account.setReach('connected');
          // The snapshot that follows each connect names every host; one that went meanwhile is not in it.
          void this.fetch(accountId).then(() => this.changedEmitter.fire());
        } else if (state.state === 'offline') {
          this.logger.info({ err: state.error, retry_in_ms: state.retry_in_ms }, 'relay device socket closed');
          this.account.setReach('unreachable', state.error.message);
        } else if (this.account.reachState === 'unknown') {
          this.account.setReach('connecting');
        }
      }),
    );
    store.add(
      socket.onPresence((host) => {
        const known = this.hosts.get(host.host_id);
        this.hosts.set(host.host_id, host);
        this.account.store.cacheHost(accountId, host, Date.now());
        if (JSON.stringify(known) !== JSON.stringify(host)) this.changedEmitter.fire();
      }),
    );
    store.add(
      socket.onHostRemoved((hostId) => {
        this.hosts.delete(hostId);
        this.account.store.forgetHost(hostId);
        this.changedEmitter.fire();
      }),
    );
    store.add(
      socket.onDevicePending((device) => {
        const status = this.account.stored()?.device_status;
        // Only a trusted device can approve; a pending one is not asked.
        if (status === 'first' || status === 'endorsed') this.pendingEmitter.fire(this.devices.entryOf(device));
      }),
    );
    store.add(
      socket.onDeviceChanged((device) => {
        if (device.public_key !== this.account.publicKey) return;
        const before = this.account.stored()?.device_status;
        this.account.noteOwnStatus(device.status);
        if (device.status === 'endorsed' && before !== 'endorsed') this.approvedEmitter.fire();
      }),
    );
    try {
      socket.start();
    } catch (error) {
      this.logger.error({ err: toHangarError(error) }, 'could not open the relay device socket');
    }
  }

  dispose(): void {
    this.disposed = true;
    void this.subscription.dispose();
    void this.socket?.store.dispose();
    this.socket = undefined;
    this.changedEmitter.dispose();
    this.pendingEmitter.dispose();
    this.approvedEmitter.dispose();
  }
}
