import {
  Emitter,
  HangarError,
  PreviewLabel,
  PreviewPort,
  parseOrThrow,
  toDisposable,
  toHangarError,
  type Disposable,
  type HostFailure,
  type ListeningPort,
  type PreviewInfo,
  type PreviewListResult,
  type PreviewView,
} from '@hangar/shared';
import type { Logger } from 'pino';
import { listOnHosts } from '../hosts/fan-out.js';
import { PreviewForwarder, type LoopbackPeers, type PreviewLink } from './forwarder.js';
import type { RememberedPreviews } from './remembered.js';

export { PreviewForwarder, type PreviewLink } from './forwarder.js';

/** A host's connection as previews use it: calls, and watching its listening ports. */
type WatchedLink = PreviewLink & { watchPorts(): Disposable };

export interface HostPreviews {
  host: string;
  previews: PreviewView[];
  listening: ListeningPort[];
  error: HostFailure | null;
}

/**
 * Previews on paired hosts: register ports on a host (it keeps the list), and serve them on this
 * computer (the forwarders live here, as long as this core or until closed). One forwarder per
 * host and port; opening an open preview answers with its address.
 */
export class PreviewsApi implements Disposable {
  private readonly forwarders = new Map<string, Promise<PreviewForwarder>>();
  /** The ones listening (one still starting has no address yet). */
  private readonly opened = new Map<string, PreviewForwarder>();
  private readonly loopbackPeers: LoopbackPeers = new Map();
  /** Clients serving a preview only while they live (hangar preview open), counted per preview. */
  private readonly holders = new Map<string, number>();
  private readonly changedEmitter = new Emitter<{
    host: string;
    previews: PreviewView[];
    listening: ListeningPort[];
  }>();
  /** A host's previews changed: registered, removed, or opened or closed on this computer. */
  readonly onChanged = this.changedEmitter.event;
  /** Clients looking at the hosts' listening ports now (watch()). */
  private watchers = 0;
  /** While any client watches: each paired host's connection, watching its ports. */
  private readonly watching = new Map<string, { connection: WatchedLink; watch: Disposable }>();

  constructor(
    private readonly connectionFor: (host: string) => WatchedLink,
    private readonly hostNames: () => string[],
    private readonly remembered: RememberedPreviews,
    private readonly logger: Logger,
  ) {}

  /** Previews of one host, or of every paired host; a host that cannot be reached is reported, not fatal. */
  async list(host?: string): Promise<HostPreviews[]> {
    return listOnHosts(
      this.hostNames(),
      host,
      async (name) => this.present(name, await this.connectionFor(name).call('preview.list', {})),
      { previews: [], listening: [] },
    );
  }

  async add(host: string, port: number, label?: string): Promise<PreviewView> {
    const checked = {
      port: parseOrThrow(PreviewPort, port, 'port'),
      ...(label !== undefined ? { label: parseOrThrow(PreviewLabel, label, 'label') } : {}),
    };
    const info = await this.connectionFor(host).call('preview.add', checked);
    return this.view(host, info);
  }

  /** Unregisters the port on the host (which cuts its connections there) and stops serving it here. */
  async remove(host: string, port: number): Promise<void> {
    try {
      await this.connectionFor(host).call('preview.remove', { port: parseOrThrow(PreviewPort, port, 'port') });
    } catch (error) {
      const failure = toHangarError(error);
      // The agent cannot know what this computer calls it.
      if (failure.code === 'E_NOT_FOUND') {
        throw new HangarError(
          'E_NOT_FOUND',
          `port ${port} is not a preview on ${host} (see: hangar preview ls ${host})`,
        );
      }
      throw failure;
    }
    // The host's previews.changed tells the UIs; listing again here would only repeat it.
    await this.close(host, port, { announce: false });
  }

  /**
   * Serves a registered preview on this computer; resolves once it listens. `remember`: a UI
   * opened it, so the next UI core serves it again at the same address (restore()).
   */
  async open(
    host: string,
    port: number,
    localPort?: number,
    options: { remember?: boolean } = {},
  ): Promise<{ url: string; local_port: number }> {
    parseOrThrow(PreviewPort, port, 'port');
    if (localPort !== undefined) parseOrThrow(PreviewPort, localPort, 'local port');
    const forwarder = await this.serve(host, port, { ...(localPort !== undefined ? { localPort } : {}), verify: true });
    if (options.remember) this.remembered.remember(host, port, forwarder.localPort);
    if (localPort !== undefined && forwarder.localPort !== localPort) {
      throw new HangarError(
        'E_EXISTS',
        `port ${port} on ${host} is already served here at ${forwarder.url}; close it first to move it`,
      );
    }
    return { url: forwarder.url, local_port: forwarder.localPort };
  }

  /**
   * Serves a registered preview while the returned `release` is not disposed (hangar preview open,
   * like ssh -L): not remembered, and it stops with its last holder unless a UI also opened it
   * (remembered) in the meantime.
   */
  async hold(
    host: string,
    port: number,
    localPort?: number,
  ): Promise<{ url: string; local_port: number; release: Disposable }> {
    const opened = await this.open(host, port, localPort);
    const key = keyOf(host, port);
    this.holders.set(key, (this.holders.get(key) ?? 0) + 1);
    const release = toDisposable(async () => {
      const left = (this.holders.get(key) ?? 1) - 1;
      if (left > 0) {
        this.holders.set(key, left);
        return;
      }
      this.holders.delete(key);
      if (!this.remembered.has(host, port)) await this.stop(host, port);
    });
    return { ...opened, release };
  }

  /**
   * Serves again what UIs had open, each on its old local port when that is free (else another).
   * The host need not be up: until it is, requests get a page that says so.
   */
  async restore(): Promise<void> {
    const known = new Set(this.hostNames());
    for (const { host, port, local_port } of this.remembered.list()) {
      if (!known.has(host)) continue;
      try {
        const forwarder = await this.serve(host, port, { preferLocalPort: local_port, verify: false });
        this.logger.info({ host, port, url: forwarder.url }, 'preview served again');
      } catch (error) {
        this.logger.warn({ host, port, err: toHangarError(error) }, 'could not serve a remembered preview');
      }
    }
  }

  /** One forwarder per host and port: an open one is returned as it is. */
  private serve(
    host: string,
    port: number,
    how: { localPort?: number; preferLocalPort?: number; verify: boolean },
  ): Promise<PreviewForwarder> {
    const key = keyOf(host, port);
    let pending = this.forwarders.get(key);
    if (!pending) {
      pending = this.startForwarder(host, port, how);
      this.forwarders.set(key, pending);
      pending.catch(() => this.forwarders.delete(key));
    }
    return pending;
  }

  private async startForwarder(
    host: string,
    port: number,
    how: { localPort?: number; preferLocalPort?: number; verify: boolean },
  ): Promise<PreviewForwarder> {
    const connection = this.connectionFor(host);
    const listed = how.verify ? await connection.call('preview.list', {}) : undefined;
    if (listed && !listed.previews.some((p) => p.port === port)) {
      throw new HangarError(
        'E_NOT_FOUND',
        `port ${port} is not a preview on ${host}; add it first with: hangar preview add ${host} ${port}`,
      );
    }
    const forwarder = await PreviewForwarder.start({
      host,
      port,
      connection: () => this.connectionFor(host),
      ...(how.localPort !== undefined ? { localPort: how.localPort } : {}),
      ...(how.preferLocalPort !== undefined ? { preferLocalPort: how.preferLocalPort } : {}),
      sameMachine: isThisComputer(connection.host),
      loopbackPeers: this.loopbackPeers,
      logger: this.logger,
    });
    const key = keyOf(host, port);
    if (!this.forwarders.has(key)) {
      await forwarder.dispose();
      throw new HangarError('E_UNAVAILABLE', `the preview of port ${port} on ${host} was closed while it opened`);
    }
    this.opened.set(key, forwarder);
    this.logger.info({ host, port, url: forwarder.url }, 'preview open');
    if (listed) this.report(host, listed);
    else this.announce(host);
    return forwarder;
  }

  /**
   * Stops serving it here, for good (the host keeps the preview registered). `announce: false`
   * when the host's own event already says what the UIs need.
   */
  async close(host: string, port: number, options: { announce?: boolean } = {}): Promise<void> {
    this.remembered.forget(host, port);
    await this.stop(host, port, options);
  }

  /** Stops serving it here; a remembered one comes back with the next UI core. */
  private async stop(host: string, port: number, options: { announce?: boolean } = {}): Promise<void> {
    const key = keyOf(host, port);
    const pending = this.forwarders.get(key);
    if (!pending) return;
    this.forwarders.delete(key);
    this.opened.delete(key);
    // A forwarder that failed to start has nothing to close; its opener got the error.
    const forwarder = await pending.catch(() => undefined);
    await forwarder?.dispose();
    if (options.announce !== false) this.announce(host);
  }

  /** Where this computer serves the preview, if it does. */
  localUrl(host: string, port: number): string | null {
    return this.opened.get(keyOf(host, port))?.url ?? null;
  }

  /**
   * The host said what its previews are now: stop serving any it no longer has (another device
   * removed it) and tell the UIs.
   */
  hostReported(host: string, listed: PreviewListResult): void {
    const ports = new Set(listed.previews.map((p) => p.port));
    for (const key of this.forwarders.keys()) {
      const [name, port] = splitKey(key);
      if (name === host && !ports.has(port)) void this.close(host, port, { announce: false });
    }
    this.report(host, listed);
  }

  /** Hosts were removed or renamed: their forwarders go (a renamed host's previews reopen under the new name). */
  hostsChanged(): void {
    const names = new Set(this.hostNames());
    for (const key of this.forwarders.keys()) {
      const [name, port] = splitKey(key);
      if (!names.has(name)) void this.stop(name, port);
    }
    this.syncWatches();
  }

  /**
   * A client looks at the hosts' listening ports (the previews view is shown) until the returned
   * disposable is disposed. While any does, every paired host watches for dev servers that start
   * or stop (its previews.changed tells, within its watch interval); while none does, no host looks.
   */
  watch(): Disposable {
    this.watchers++;
    this.syncWatches();
    let released = false;
    return toDisposable(() => {
      if (released) return;
      released = true;
      this.watchers--;
      this.syncWatches();
    });
  }

  /** Each paired host's connection watches while a client does (a host added meanwhile too), else none. */
  private syncWatches(): void {
    const names = new Set(this.watchers > 0 ? this.hostNames() : []);
    for (const [name, held] of this.watching) {
      // A host removed, or its connection replaced (the core forgets one whose host went away).
      if (names.has(name) && this.connectionFor(name) === held.connection) continue;
      this.watching.delete(name);
      void held.watch.dispose();
    }
    for (const name of names) {
      if (this.watching.has(name)) continue;
      const connection = this.connectionFor(name);
      this.watching.set(name, { connection, watch: connection.watchPorts() });
    }
  }

  /**
   * On a host that is this computer, this core's own listeners (web mode's port, the previews it
   * serves) listen there too: they are not dev servers to add.
   */
  private withoutOwnPorts(listening: ListeningPort[]): ListeningPort[] {
    const served = new Set([...this.opened.values()].map((f) => f.localPort));
    return listening.filter((l) => l.pid !== process.pid && !served.has(l.port));
  }

  /** What the UI sees of a host's listing: where each preview is served here, and real candidates. */
  private present(host: string, listed: PreviewListResult): { previews: PreviewView[]; listening: ListeningPort[] } {
    const sameMachine = isThisComputer(this.connectionFor(host).host);
    return {
      previews: listed.previews.map((p) => this.view(host, p)),
      listening: sameMachine ? this.withoutOwnPorts(listed.listening) : listed.listening,
    };
  }

  private report(host: string, listed: PreviewListResult): void {
    this.changedEmitter.fire({ host, ...this.present(host, listed) });
  }

  private view(host: string, info: PreviewInfo): PreviewView {
    return { ...info, local_url: this.localUrl(host, info.port) };
  }

  private announce(host: string): void {
    this.connectionFor(host)
      .call('preview.list', {})
      .then((listed) => this.report(host, listed))
      .catch((error: unknown) => this.logger.debug({ host, err: toHangarError(error) }, 'could not list previews'));
  }

  async dispose(): Promise<void> {
    this.watchers = 0;
    this.syncWatches();
    const pending = [...this.forwarders.values()];
    this.forwarders.clear();
    this.opened.clear();
    // A forwarder that failed to start has nothing to close; its opener got the error.
    await Promise.all(pending.map((p) => p.then((f) => f.dispose()).catch(() => undefined)));
    this.changedEmitter.dispose();
  }
}

function keyOf(host: string, port: number): string {
  return `${host}:${port}`;
}

function splitKey(key: string): [string, number] {
  const at = key.lastIndexOf(':');
  return [key.slice(0, at), Number(key.slice(at + 1))];
}

/** The embedded agent, or a host paired at a loopback address, runs on this computer. */
function isThisComputer(host: PreviewLink['host']): boolean {
  if (host.embedded) return true;
  const name = host.address
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase();
  return name === 'localhost' || name === '::1' || /^127\./.test(name);
}
