import {
  DisposableStore,
  Emitter,
  toHangarError,
  visibleText,
  type Disposable,
  type HostStats,
  type HostView,
  type JobInfo,
  type SessionInfo,
  type TmuxServerState,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { HostConnection } from '../connection/host-connection.js';
import type { HangarCore } from '../core.js';
import type { HostEntry } from '../hosts/directory.js';
import { isFinal } from '../jobs/index.js';
import type { DesktopNotification, Platform } from '../platform.js';
import { AgentAttention } from './agent-attention.js';
import { hostView } from './host-views.js';

/**
 * `hosts.list` with fresh: stats a linked host gave within this long are listed at once, and asked
 * for again behind the answer (each host.stats runs tmux on the host: ten of them took most of a
 * second of `hangar hosts ls`, issue 18); the next listing has the new ones (no hosts.changed for
 * them: a window that re-lists on that event would keep the host asking). At most one such
 * background ask per STATS_REFRESH_GAP_MS (each runs tmux on the host: ten of them behind every
 * `hosts ls` of a script's loop would load the hosts for figures that are minutes-scale anyway).
 */
const STATS_KNOWN_MS = 30_000;
const STATS_REFRESH_GAP_MS = 5000;
/** A host that does not answer host.stats within this long is listed without stats. */
const STATS_TIMEOUT_MS = 2000;
/** `hosts.list` with probe (the hangar command): a paired host not linked within this long is listed as it is then. */
const PROBE_TIMEOUT_MS = 3000;
/**
 * …except a host of the account that the relay says is online: its link may need WebRTC or the
 * relay's splice after its addresses (each tried for up to 3 s), so it gets this long in all.
 */
const PROBE_FALLBACK_TIMEOUT_MS = 12_000;
/** Status flaps (connecting → offline while a host is down) are merged into one event. */
const CHANGE_DEBOUNCE_MS = 100;
/** At most one notification per session in this long; the UI event goes out for every bell. */
const BELL_NOTIFY_GAP_MS = 30_000;
/** Jobs already announced as finished, remembered so a repeated event does not notify twice. */
const NOTIFIED_LIMIT = 1000;

interface Watched {
  connection: HostConnection;
  store: DisposableStore;
  error: string | null;
  stats: HostStats | null;
  /** When `stats` came, and whether they are being asked for again. */
  statsAt: number;
  statsPending: boolean;
}

/**
 * Keeps a link to every paired host while a UI is connected (so their status is live and
 * reconnects happen), and turns what the hosts say into UI events: hosts.changed, job.updated,
 * sessions.changed, previews (through core.previews), and a desktop notification when a job ends. One per core, shared by every UI connection.
 * Not `live` (the hangar command's own short-lived core): it links to no host by itself, so a
 * command touches only the hosts it names, and it says nothing but hosts.changed.
 */
export class HostMonitor implements Disposable {
  private readonly watched = new Map<string, Watched>();
  private readonly changedEmitter = new Emitter<void>();
  readonly onChanged = this.changedEmitter.event;
  private readonly jobEmitter = new Emitter<{ host: string; job: JobInfo }>();
  readonly onJobUpdated = this.jobEmitter.event;
  private readonly sessionsEmitter = new Emitter<{ host: string; sessions: SessionInfo[]; tmux: TmuxServerState }>();
  readonly onSessionsChanged = this.sessionsEmitter.event;
  private readonly bellEmitter = new Emitter<{ host: string; name: string }>();
  readonly onSessionBell = this.bellEmitter.event;
  /** When each host/session last made a notification (bells come in bursts). */
  private readonly lastBell = new Map<string, number>();
  private readonly notified = new Set<string>();
  private readonly agents = new AgentAttention();
  private readonly subscriptions: Disposable[];
  /** Why a probed host (not watched: the hangar command's core) could not be linked. */
  private readonly probeErrors = new Map<string, string>();
  private changeTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly core: HangarCore,
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly live = true,
  ) {
    const follow = () => (live ? this.sync() : this.changed());
    this.subscriptions = [
      core.onHostsChanged(follow),
      // The account's hosts came, went or changed presence; the relay came or went.
      core.accountHosts.onChanged(() => {
        follow();
        this.changed();
      }),
      // This device was approved: account hosts that refused it may let it in now.
      core.accountHosts.onApproved(() => this.retryRefused()),
    ];
    this.sync();
  }

  /**
   * Every host (paired and the account's) as the UI shows it. `fresh`: ask online hosts for their
   * load, and the relay for the account's hosts when this core has no socket to it. `probe` (the
   * hangar command's core, which keeps no links): link to each paired host first, at most 3 s.
   */
  async views(options: { fresh?: boolean; probe?: boolean } = {}): Promise<HostView[]> {
    this.sync();
    // The account's word first: how long the probe waits for a host depends on it.
    const entries = await this.core.hostEntries({ fresh: options.fresh ?? false });
    if (options.probe && !this.live) await this.probe(entries);
    return Promise.all(
      entries.map(async (entry): Promise<HostView> => {
        const watched = this.watched.get(entry.name);
        const status = this.core.linkStatus(entry.name);
        if (options.fresh && watched && status === 'online') await this.freshStats(entry.name, watched);
        const connection = watched?.connection ?? this.core.existingConnection(entry.name);
        return hostView(entry, {
          status,
          info: (watched?.connection ?? this.core.existingConnection(entry.name))?.info ?? null,
          path: (watched?.connection ?? this.core.existingConnection(entry.name))?.path ?? null,
          stats: watched?.stats ?? null,
          error: watched?.error ?? this.probeErrors.get(entry.name) ?? null,
        });
      }),
    );
  }

  /**
   * Links to every paired host at once, waiting at most PROBE_TIMEOUT_MS, or
   * PROBE_FALLBACK_TIMEOUT_MS for one the account's relay says is online (then it is listed as it is).
   */
  private async probe(entries: HostEntry[]): Promise<void> {
    const names = this.core.registry.list().map((h) => h.name);
    await Promise.all(
      names.map(async (name) => {
        let timer: NodeJS.Timeout | undefined;
        const online = entries.find((e) => e.name === name)?.account?.presence === 'online';
        const waitMs = online ? PROBE_FALLBACK_TIMEOUT_MS : PROBE_TIMEOUT_MS;
        const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
        try {
          await Promise.race([this.core.connection(name).link(), late]);
          this.probeErrors.delete(name);
          // The list shows the link's round trip: one ping on it (at most 2 s; a splice has no other figure).
          await this.core.connection(name).measureRtt();
        } catch (error) {
          this.probeErrors.set(name, toHangarError(error).message);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /**
   * This device was approved: account hosts that refused it are tried again. The host learns of the
   * endorsement from the relay at about the moment this device does, maybe a little later, so a
   * host that still refuses is tried again after 0.5, 1, 2, 4 and 8 s.
   */
  private retryRefused(attempt = 0): void {
    clearTimeout(this.retryTimer);
    const refused = [...this.watched].filter(([, w]) => w.connection.status !== 'online' && w.error !== null);
    void Promise.all(
      refused.map(([name, watched]) =>
        watched.connection.link().then(
          () => {
            this.changed();
            return true;
          },
          (error: unknown) => {
            watched.error = toHangarError(error).message;
            this.logger.info(
              { host: name, err: toHangarError(error), attempt },
              'an account host still refuses this device',
            );
            this.changed();
            return toHangarError(error).code !== 'E_AUTH_UNKNOWN_DEVICE';
          },
        ),
      ),
    ).then((settled) => {
      if (this.disposed || settled.every(Boolean) || attempt >= 4) return;
      this.retryTimer = setTimeout(() => this.retryRefused(attempt + 1), 500 * 2 ** attempt);
    });
  }

  /** Waits until the host's link is up or has failed once (so a just-paired host shows its real status). */
  async settle(name: string): Promise<void> {
    this.sync();
    const watched = this.watched.get(name);
    if (!watched) return;
    try {
      await watched.connection.link();
    } catch (error) {
      watched.error = toHangarError(error).message;
    }
  }

  /**
   * Follows the host list: watches paired hosts and the account's hosts that are online with
   * addresses (linking to one the first time pins it), forgets removed ones, re-watches replaced
   * connections.
   */
  sync(): void {
    if (this.disposed || !this.live) return;
    const names = new Set(
      this.core
        .hostEntriesNow()
        .filter((e) => e.record || (e.account?.presence === 'online' && e.account.host.record !== null))
        .map((e) => e.name),
    );
    for (const [name, watched] of this.watched) {
      if (!names.has(name) || this.core.connection(name) !== watched.connection) {
        void watched.store.dispose();
        this.watched.delete(name);
        this.changed();
      }
    }
    for (const name of names) if (!this.watched.has(name)) this.watch(name);
  }

  private watch(name: string): void {
    const connection = this.core.connection(name);
    const store = new DisposableStore();
    const watched: Watched = { connection, store, error: null, stats: null, statsAt: 0, statsPending: false };
    this.watched.set(name, watched);
    store.add(connection.retain());
    store.add(
      connection.onStatus((status) => {
        if (status === 'online') {
          watched.error = null;
          this.core.warmListings(name);
          // A host came: what waits in this computer's task queue may fit it.
          this.core.tasks.dispatchQueued();
          // Load and capabilities come with the status, so the UI need not ask.
          void this.stats(name).then((stats) => {
            watched.stats = stats;
            watched.statsAt = Date.now();
            this.changed();
          });
        }
        this.changed();
      }),
    );
    // The connection validated each event against HOST_EVENTS: these see only well-formed data.
    store.add(connection.on('job.updated', ({ job }) => this.jobUpdated(name, job)));
    store.add(connection.on('task.updated', ({ task }) => this.core.tasks.hostReported(name, task)));
    store.add(
      connection.on('sessions.changed', ({ sessions, tmux }) => {
        for (const note of this.agents.observe(name, sessions)) this.notify(note);
        this.sessionsEmitter.fire({ host: name, sessions, tmux });
      }),
    );
    store.add(connection.on('session.bell', (bell) => this.bell(name, bell.name)));
    // Heard whoever watches the ports (core.previews.watch): this listener alone does not watch them.
    store.add(
      connection.on('previews.changed', (listed) => this.core.previews.hostReported(name, listed), {
        watchPorts: false,
      }),
    );
    // A new link (a reconnect, or a move to a better path): the list shows its path.
    store.add(connection.onLink(() => this.changed()));
    // … and its round trip once measured, a moment later: after a move to a better path nothing else
    // may change, and the window (which shows what hosts.changed says) would show no RTT.
    store.add(connection.onFirstRoundTrip(() => this.changed()));
    // HostConnection has taken the new info in already (it listens first); the host list shows it.
    store.add(connection.on('host.info', () => this.changed()));
    connection.link().catch((error: unknown) => {
      watched.error = toHangarError(error).message;
      this.changed();
    });
    this.changed();
  }

  /** Stats at most STATS_KNOWN_MS old now (and newer ones asked for behind them), else asked for. */
  private async freshStats(name: string, watched: Watched): Promise<void> {
    if (watched.stats && Date.now() - watched.statsAt <= STATS_KNOWN_MS) {
      if (watched.statsPending || Date.now() - watched.statsAt < STATS_REFRESH_GAP_MS) return;
      watched.statsPending = true;
      void this.stats(name).then((stats) => {
        watched.statsPending = false;
        if (this.watched.get(name) !== watched || stats === null) return;
        watched.stats = stats;
        watched.statsAt = Date.now();
      });
      return;
    }
    watched.stats = await this.stats(name);
    watched.statsAt = Date.now();
  }

  private async stats(name: string): Promise<HostStats | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), STATS_TIMEOUT_MS)));
    try {
      return await Promise.race([this.core.hostStats(name), timeout]);
    } catch (error) {
      this.logger.debug({ host: name, err: toHangarError(error) }, 'host.stats failed');
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private jobUpdated(host: string, job: JobInfo): void {
    this.jobEmitter.fire({ host, job });
    if (!isFinal(job.state) || this.notified.has(job.id)) return;
    this.notified.add(job.id);
    if (this.notified.size > NOTIFIED_LIMIT) this.notified.delete(this.notified.values().next().value!);
    const exit = job.exit_code === null ? '' : ` (exit ${job.exit_code})`;
    this.notify({
      title: `Job ${job.state.replace('_', ' ')} on ${host}`,
      body: `${job.command}${exit}`,
    });
  }

  private bell(host: string, name: string): void {
    this.bellEmitter.fire({ host, name });
    if (this.agents.tracks(host, name)) return; // its hooks already told us, better
    const key = `${host}/${name}`;
    const now = Date.now();
    if (now - (this.lastBell.get(key) ?? -Infinity) < BELL_NOTIFY_GAP_MS) return;
    this.lastBell.set(key, now);
    this.notify({
      title: `${key} rang its bell`,
      body: 'It may be waiting for you: an agent asking, or a command done.',
    });
  }

  /**
   * Every notification holds host text (a job's command, Claude's words): control characters are
   * shown, not passed to the notifier (whatever renders it: a daemon, osascript, Electron).
   */
  private notify({ title, body }: DesktopNotification): void {
    this.platform.showNotification({ title: visibleText(title), body: visibleText(body) });
  }

  private changed(): void {
    if (this.changeTimer || this.disposed) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined;
      this.changedEmitter.fire();
    }, CHANGE_DEBOUNCE_MS);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.changeTimer);
    clearTimeout(this.retryTimer);
    for (const subscription of this.subscriptions) await subscription.dispose();
    for (const watched of this.watched.values()) await watched.store.dispose();
    this.watched.clear();
    this.changedEmitter.dispose();
    this.jobEmitter.dispose();
    this.sessionsEmitter.dispose();
    this.bellEmitter.dispose();
  }
}
