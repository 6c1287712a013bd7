import {
  isHangarError,
  Emitter,
  HangarError,
  HostAddress,
  toHangarError,
  HostName,
  SessionCreateParams,
  parseOrThrow,
  type HostFailure,
  type HostInfo,
  type HostRecord,
  type HostStats,
  type HostStatus,
  type SessionInfo,
  type TmuxServerState,
} from '@hangar/shared';
import { loadNativeLanes } from '@hangar/lane';
import type Database from 'better-sqlite3';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { HostConnection, upgradeDelaysFromEnv } from './connection/host-connection.js';
import { mergeHosts, type HostEntry } from './hosts/directory.js';
import { listOnHosts } from './hosts/fan-out.js';
import { knownJobs } from './hosts/known-jobs.js';
import { knownSessions } from './hosts/known-sessions.js';
import { HostRegistry } from './hosts/registry.js';
import { JobsApi } from './jobs/index.js';
import { createCoreLogger } from './logging.js';
import { loadOrCreateDeviceKey, type DeviceKey } from './identity/device-key.js';
import { connectToHost } from './link/connect.js';
import { PreviewsApi } from './previews/index.js';
import { TasksApi } from './tasks/index.js';
import { RememberedPreviews } from './previews/remembered.js';
import { AccountDevices } from './relay/account-devices.js';
import { AccountHosts } from './relay/account-hosts.js';
import { AccountStore } from './relay/account-store.js';
import { relaySpliceFallback } from './relay/relay-splice.js';
import { webRtcFallback } from './relay/webrtc-reach.js';
import { releaseWebRtc } from './link/webrtc-connect.js';
import { HostReach } from './relay/reach.js';
import { RelayAccount } from './relay/relay-account.js';
import { openCoreDb } from './state/db.js';
import { hangarHome } from './state/paths.js';
import { TerminalClient, type TakeOver } from './terminal/terminal-client.js';

export interface CoreOptions {
  home?: string;
  logger?: Logger;
}

/**
 * The app core: paired hosts, their links, jobs and previews. Keys and host links stay in here.
 * Clients (the window, web mode, the hangar command) reach it only through the procedures of
 * api/ (CoreApiServer); `hangar up`, `hangar ui` and Electron's main own one and serve it.
 */
export class HangarCore {
  private readonly connections = new Map<string, HostConnection>();
  /** Each linked host's session list, kept current by the host's own pushes. */
  private readonly knownSessions = knownSessions();
  /** Each linked host's newest jobs, kept current by its job.updated events. */
  private readonly knownJobs = knownJobs();
  private readonly hostsChangedEmitter = new Emitter<void>();
  /** A host was added, removed, renamed or re-addressed: its old HostConnection is gone. */
  readonly onHostsChanged = this.hostsChangedEmitter.event;
  /** Build jobs on paired hosts (see jobs/). */
  readonly jobs = new JobsApi(
    (host) => this.connection(host),
    () => this.registry.list().map((h) => h.name),
    (host, limit, ask) => this.knownJobs.list(host, ask, limit),
  );

  /** Dev-server previews on paired hosts, served on this computer (see previews/). */
  readonly previews: PreviewsApi;
  /** Agent tasks: this computer's queue and the hosts that claim from it (see tasks/). */
  readonly tasks: TasksApi;
  /** This computer's account on a relay, if signed in (see relay/). */
  readonly account: RelayAccount;
  /** The account's devices: list, approve, revoke. */
  readonly devices: AccountDevices;
  /** The account's hosts as the relay describes them. */
  readonly accountHosts: AccountHosts;
  private readonly reach: HostReach;

  private constructor(
    readonly home: string,
    private readonly db: Database.Database,
    readonly registry: HostRegistry,
    private readonly deviceKey: DeviceKey,
    readonly logger: Logger,
    /** Waits before each look for a better path (HANGAR_UPGRADE_DELAY_MS, else host-connection's defaults). */
    private readonly upgradeDelaysMs: readonly number[],
  ) {
    this.account = new RelayAccount({
      store: new AccountStore(db),
      deviceKey,
      defaultDeviceName: hostname().slice(0, 64) || 'computer',
      logger: logger.child({ component: 'relay' }),
    });
    this.devices = new AccountDevices(this.account, () => registry.list());
    this.accountHosts = new AccountHosts(this.account, this.devices, logger.child({ component: 'relay' }));
    this.reach = new HostReach({
      registry,
      account: this.account,
      entries: (fresh) => this.hostEntries({ fresh }),
      deviceKey: deviceKey.privateKey,
      deviceName: this.deviceName,
      saved: () => this.hostsChangedEmitter.fire(),
      longLived: () => this.accountHosts.isLive,
      logger,
      fallbacks: [
        // HANGAR_WEBRTC=off leaves WebRTC out (a network known to block UDP: only its 5 s of ICE would be added).
        ...(process.env.HANGAR_WEBRTC === 'off'
          ? []
          : [
              webRtcFallback({
                accountHosts: this.accountHosts,
                deviceKey: deviceKey.privateKey,
                deviceName: this.deviceName,
                iceServers: () => this.account.iceServers(),
              }),
            ]),
        // UDP blocked, or no WebRTC pair formed: the relay splices the same end-to-end TLS link.
        // HANGAR_SPLICE=off leaves it out (a bench that measures the WebRTC path).
        ...(process.env.HANGAR_SPLICE === 'off'
          ? []
          : [
              relaySpliceFallback({
                account: this.account,
                deviceKey: deviceKey.privateKey,
                deviceName: this.deviceName,
              }),
            ]),
      ],
    });
    this.previews = new PreviewsApi(
      (host) => this.connection(host),
      () => this.registry.list().map((h) => h.name),
      new RememberedPreviews(db),
      logger,
    );
    this.onHostsChanged(() => this.previews.hostsChanged());
    this.tasks = new TasksApi(
      db,
      (host) => this.connection(host),
      () => this.registry.list().map((h) => h.name),
      logger.child({ component: 'tasks' }),
    );
  }

  static async open(options: CoreOptions = {}): Promise<HangarCore> {
    const home = options.home ?? hangarHome();
    // Checked before anything is opened: a bad value stops the core with an error that names it.
    const upgradeDelaysMs = upgradeDelaysFromEnv();
    const logger = options.logger ?? createCoreLogger();
    // Each key and echo of a terminal on a link's stream passes this thread: it gets the short CPU
    // slice of a keystroke's path (lane/src/native/relay.c), where the native relay loads (not in
    // Electron), so a download beside it does not keep a woken key waiting for a CPU.
    const native = loadNativeLanes();
    const slice = 'unavailable' in native ? native.unavailable : native.preferLatency();
    if (slice) logger.debug({ why: slice }, "the core's thread keeps the default CPU slice");
    const db = openCoreDb(home);
    const deviceKey = await loadOrCreateDeviceKey(home);
    return new HangarCore(
      home,
      db,
      new HostRegistry(db),
      deviceKey,
      logger.child({ component: 'core' }),
      upgradeDelaysMs,
    );
  }

  get deviceName(): string {
    return `${hostname()} (hangar)`;
  }

  /** A UI door is up: keep the account's device socket open while signed in (presence, approvals). */
  goLive(): void {
    this.accountHosts.goLive();
  }

  /**
   * Every host: paired ones and the account's, one entry when both (hosts/directory.ts). `fresh`:
   * ask the relay now when this core has no socket to it (at most 3 s; the last word otherwise).
   */
  /** Marks the hosts whose keys this computer took on the relay's word (approved without a code). */
  private markRelayKeys(entries: HostEntry[]): HostEntry[] {
    const account = this.account.stored();
    if (account === undefined) return entries;
    const store = this.account.store;
    const relayWord = store.trust(account.account_id)?.host_trust === 'relay';
    const taken = new Set(store.trustedKeys(account.account_id, 'relay_host').map((k) => k.key));
    if (!relayWord && taken.size === 0) return entries;
    return entries.map((entry) => ({
      ...entry,
      keys_from_relay: entry.record ? taken.has(entry.record.agent_key) : relayWord && entry.account !== undefined,
    }));
  }

  async hostEntries(options: { fresh?: boolean } = {}): Promise<HostEntry[]> {
    return this.markRelayKeys(mergeHosts(this.registry.listSeen(), await this.accountHosts.list(options)));
  }

  /** The same from what this core knows now, without asking anyone. */
  hostEntriesNow(): HostEntry[] {
    return this.markRelayKeys(mergeHosts(this.registry.listSeen(), this.accountHosts.current()));
  }

  /** Every host with the status of this core's link to it (the tray lists them). */
  listHosts(): { name: string; status: HostStatus }[] {
    return this.hostEntriesNow().map((entry) => ({ name: entry.name, status: this.linkStatus(entry.name) }));
  }

  /** The status of this core's link to `name` (offline when it has none open). */
  linkStatus(name: string): HostStatus {
    return this.connections.get(name)?.status ?? 'offline';
  }

  /** The host's connection if this core has made one (it does not connect). */
  existingConnection(name: string): HostConnection | undefined {
    return this.connections.get(name);
  }

  /** Pairs with a host using the one-time code it printed, and pins its keys. */
  async addHost(input: {
    name: string;
    address: string;
    code: string;
    embedded?: boolean;
    replace?: boolean;
  }): Promise<{ host: HostRecord; info: HostInfo }> {
    const name = parseOrThrow(HostName, input.name, 'host name');
    const address = parseOrThrow(HostAddress, input.address, 'host address');
    if (!input.replace && this.registry.find(name)) {
      throw new HangarError(
        'E_HOST_EXISTS',
        `a host named "${name}" already exists; remove it first with: hangar hosts rm ${name}`,
      );
    }
    const paired = await connectToHost({
      address,
      deviceKey: this.deviceKey.privateKey,
      deviceName: this.deviceName,
      pairingCode: input.code,
      hostName: name,
    });
    paired.transport.close({ code: 'closed', message: 'pairing done' });
    const host: HostRecord = {
      name,
      address,
      agent_key: paired.agent_key,
      cert_fingerprint: paired.cert_fingerprint,
      embedded: input.embedded ?? false,
      added_at: Date.now(),
    };
    this.registry.save(host, { replace: input.replace ?? false });
    this.dropConnection(name);
    this.hostsChangedEmitter.fire();
    return { host, info: paired.host };
  }

  /**
   * Forgets a host here; a host of the account is removed from the account too (the relay forgets
   * it and tells its agent to stop dialing; the host keeps its pins). Nothing changes when the relay
   * cannot be told.
   */
  async removeHost(name: string): Promise<{ from_account: boolean }> {
    const entries = await this.hostEntries({ fresh: true }).catch((error: unknown) => {
      // A record that no longer parses names itself and says to remove it: it goes unread.
      if (isHangarError(error) && error.code === 'E_STORE_CORRUPT' && error.details?.['record'] === name) return null;
      throw error;
    });
    if (entries === null) {
      this.registry.remove(name);
      this.dropConnection(name);
      this.hostsChangedEmitter.fire();
      return { from_account: false };
    }
    const entry = entries.find((e) => e.name === name);
    if (entry === undefined) this.registry.get(name); // throws E_HOST_NOT_FOUND with the known names
    const account = entry?.account;
    if (account) {
      try {
        await this.account.call('hosts.remove', { host_id: account.host.host_id });
      } catch (error) {
        const failure = toHangarError(error);
        throw new HangarError(
          failure.code,
          `"${name}" is a host of your account, and the relay did not remove it (${failure.message}); nothing was removed`,
        );
      }
      this.accountHosts.forget(account.host.host_id);
    }
    if (entry?.record) this.registry.remove(name);
    this.dropConnection(name);
    this.hostsChangedEmitter.fire();
    return { from_account: account !== undefined };
  }

  /** Renames a paired host on this computer only; its keys and sessions are unchanged. */
  renameHost(name: string, newName: string): void {
    const to = parseOrThrow(HostName, newName, 'new host name');
    if (this.registry.get(name).embedded && to !== name) {
      // `hangar up` finds this machine's agent by that name and would pair it again under it.
      throw new HangarError('E_BAD_REQUEST', `"${name}" is this machine's embedded agent; its name cannot change`);
    }
    this.registry.rename(parseOrThrow(HostName, name, 'host name'), to);
    this.dropConnection(name);
    this.hostsChangedEmitter.fire();
  }

  /** Points an already-paired host at a new address (the embedded agent picks a free port). */
  updateHostAddress(name: string, address: string): void {
    parseOrThrow(HostAddress, address, 'host address');
    this.registry.updateAddress(name, address);
    this.dropConnection(name);
    this.hostsChangedEmitter.fire();
  }

  /**
   * The link to a host by name: a paired host, or an account host this computer has not linked yet
   * (the first link pins it; see relay/reach.ts). A name that is neither fails when the link is
   * made, with the known names.
   */
  connection(name: string): HostConnection {
    const existing = this.connections.get(name);
    if (existing) return existing;
    const host = this.registry.find(name) ?? {
      name,
      address: '',
      agent_key: '',
      cert_fingerprint: '',
      embedded: false,
      added_at: 0,
    };
    const connection: HostConnection = new HostConnection(host, {
      deviceKey: this.deviceKey.privateKey,
      deviceName: this.deviceName,
      logger: this.logger,
      dial: () => this.reach.dial(name),
      better: (current) => this.reach.better(name, current),
      upgradeDelaysMs: this.upgradeDelaysMs,
      onNotFound: () =>
        queueMicrotask(() => {
          if (this.connections.get(name) !== connection) return;
          this.connections.delete(name);
          this.knownSessions.forget(name);
          this.knownJobs.forget(name);
          connection.dispose();
        }),
    });
    this.knownSessions.follow(name, connection);
    this.knownJobs.follow(name, connection);
    let wasOnline = false;
    connection.onStatus((status) => {
      // When this computer last had the link up: shown as "last seen" while the host is away.
      if (status === 'online' || wasOnline) this.registry.touch(name, Date.now());
      wasOnline = status === 'online';
    });
    this.connections.set(name, connection);
    return connection;
  }

  async hostInfo(name: string): Promise<HostInfo> {
    return this.connection(name).call('host.info', {});
  }

  /** Live load, sessions and capabilities of a host (the agent's host.stats). */
  async hostStats(name: string): Promise<HostStats> {
    return this.connection(name).call('host.stats', {});
  }

  async createSession(host: string, params: SessionCreateParams): Promise<SessionInfo> {
    const checked = parseOrThrow(SessionCreateParams, params, 'session');
    try {
      return await this.connection(host).call('session.create', checked);
    } finally {
      this.knownSessions.forget(host);
    }
  }

  async listSessions(host: string): Promise<SessionInfo[]> {
    return (await this.connection(host).call('session.list', {})).sessions;
  }

  /**
   * Sessions of one host, or of every host, with whether its tmux server went away with some
   * (tmux null when the host was not reached); a host that cannot be reached is reported, not fatal.
   */
  async sessionsOn(
    host?: string,
  ): Promise<{ host: string; sessions: SessionInfo[]; tmux: TmuxServerState | null; error: HostFailure | null }[]> {
    const names = this.registry.list().map((h) => h.name);
    // What a linked host last pushed, else its answer (hosts/known-sessions.ts).
    const ask = (name: string): Promise<{ sessions: SessionInfo[]; tmux: TmuxServerState | null }> =>
      this.knownSessions.list(
        name,
        async () => {
          const { sessions, tmux } = await this.connection(name).call('session.list', {});
          return { sessions, tmux };
        },
        undefined,
      );
    return listOnHosts(names, host, ask, { sessions: [], tmux: null });
  }

  /**
   * A running core's link to the host came up: its session list and newest jobs are asked for now
   * and kept current from then on by its events, so even the first listing is answered at once.
   */
  warmListings(name: string): void {
    this.sessionsOn(name).catch(() => undefined);
    this.jobs.list(name).catch(() => undefined);
  }

  async killSession(host: string, name: string): Promise<void> {
    try {
      await this.connection(host).call('session.kill', { name });
    } finally {
      this.knownSessions.forget(host);
    }
  }

  /**
   * `listen` subscribes before the attach (TerminalClient.open): nothing of the first screen is
   * missed. With `takeOver`, resumes an attachment another client of this device holds.
   */
  async attach(
    host: string,
    session: string,
    size: { cols: number; rows: number },
    listen?: (client: TerminalClient) => void,
    takeOver?: TakeOver,
  ): Promise<TerminalClient> {
    // One more client on the session: its list changes (the host pushes it too, a moment later).
    this.knownSessions.forget(host);
    return TerminalClient.open(this.connection(host), session, size, listen, takeOver);
  }

  private dropConnection(name: string): void {
    this.knownSessions.forget(name);
    this.knownJobs.forget(name);
    this.connections.get(name)?.dispose();
    this.connections.delete(name);
  }

  async dispose(): Promise<void> {
    await this.previews.dispose();
    this.tasks.dispose();
    for (const connection of this.connections.values()) connection.dispose();
    this.connections.clear();
    this.accountHosts.dispose();
    this.account.dispose();
    this.hostsChangedEmitter.dispose();
    this.db.close();
    await releaseWebRtc();
  }
}
