import {
  afterThisTask,
  HandleWrites,
  HangarError,
  PREVIEW_REMOVED,
  PREVIEW_FRAME_BYTES,
  PREVIEW_STREAM_WINDOW,
  PooledReads,
  ReadBufferPool,
  spliceSocket,
  type Disposable,
  type LinkStream,
  type Mux,
  type PreviewInfo,
  type PreviewListResult,
  type PublishHostEvent,
} from '@hangar/shared';
import { relaySockets, type NativeLanes, type Relay } from '@hangar/lane';
import type Database from 'better-sqlite3';
import { closeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { LaneTaken } from '../link/lanes.js';
import { listeningFingerprint, listeningSnapshot } from './listening-ports.js';
import { PreviewStore, type PreviewRecord } from './preview-store.js';

export interface PreviewServiceOptions {
  db: Database.Database;
  /** Ports of the agent itself (its link listener): never offered as previews. */
  ownPorts: () => number[];
  publish: PublishHostEvent;
  logger: Logger;
  /** Open preview connections one link may hold (a browser opens ~6 per origin; HMR one more). */
  maxConnectionsPerLink?: number;
  connectTimeoutMs?: number;
  /** How often, while a client watches the ports, to look whether a dev server started or stopped. */
  watchIntervalMs?: number;
  /**
   * A link that has said nothing on preview.watch this long after it came is a core from before
   * preview.watch (it never will): it is watched for, as that core expects. Default 3 s.
   */
  unsaidWatchMs?: number;
}

const DEFAULT_MAX_CONNECTIONS_PER_LINK = 256;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/**
 * A dev server shows up in the UI within this of listening. Linux reads /proc's two tables
 * (cheap); elsewhere (macOS) each look is an lsof run over every process: less often.
 */
const DEFAULT_WATCH_INTERVAL_MS = process.platform === 'linux' ? 2000 : 10_000;
/**
 * A core that knows preview.watch says it on each link as it comes (watch: false too), so a link
 * still silent after this is an older core's. A `hangar` command of such a core ends well before.
 */
const DEFAULT_UNSAID_WATCH_MS = 3000;
/** Dev servers bind one of these alone as often as both (Node resolves `localhost` either way). */
const LOOPBACKS = ['127.0.0.1', '::1'] as const;
type Loopback = (typeof LOOPBACKS)[number];

export interface PreviewConnection {
  address: Loopback;
  sourcePort: number;
  /** Starts moving bytes; call once the answer to preview.connect has gone out. */
  start(): void;
}

/**
 * Previews on this host: the registry of ports paired devices chose to serve, what else listens
 * (candidates), and the connections through the link. Only a registered port is ever connected
 * to, and only on the host's own loopback; unregistering one cuts its open connections.
 */
export class PreviewService implements Disposable {
  private readonly store: PreviewStore;
  private readonly live = new Map<number, Set<LinkStream>>();
  /** Preview connections on lanes, by port: their native relays. */
  private readonly liveLanes = new Map<number, Set<Relay>>();
  private readonly perLink = new WeakMap<Mux, number>();
  private watchTimer: NodeJS.Timeout | undefined;
  /** Links whose clients watch the listening ports (preview.watch); each leaves when its link closes. */
  private readonly watchers = new Map<Mux, Disposable>();
  /** Links that have not said preview.watch yet: each is watched for once its wait ends (linked()). */
  private readonly unsaid = new Map<Mux, { timer: NodeJS.Timeout; closed: Disposable }>();
  /** Links that said preview.watch at least once (one may say it before linked() is called). */
  private readonly saidWatch = new WeakSet<Mux>();
  private lastFingerprint: string | undefined;
  /** The dev servers' answers are read into these, used again once the client acked them. */
  private readonly readBuffers = new ReadBufferPool();

  constructor(private readonly options: PreviewServiceOptions) {
    this.store = new PreviewStore(options.db);
  }

  /**
   * The previews and the candidates as they are now. What a caller sees is also the baseline the
   * watch compares with; if ports moved since the last look, every client is told (`publish`
   * forces it), so none misses a change that this caller happened to see first.
   */
  async list(options: { publish?: boolean } = {}): Promise<PreviewListResult> {
    const own = new Set(this.options.ownPorts());
    const { ports: found, fingerprint } = await listeningSnapshot();
    const moved = this.lastFingerprint !== undefined && this.lastFingerprint !== fingerprint;
    this.lastFingerprint = fingerprint;
    const listening = found.filter((l) => !own.has(l.port) && l.pid !== process.pid);
    const open = new Set(listening.map((l) => l.port));
    const previews = this.store.list().map((record) => toInfo(record, open.has(record.port)));
    const registered = new Set(previews.map((p) => p.port));
    const listed = { previews, listening: listening.filter((l) => !registered.has(l.port)) };
    if (options.publish || moved) this.options.publish('previews.changed', listed);
    return listed;
  }

  async add(port: number, label: string | undefined, device: string): Promise<PreviewInfo> {
    if (this.options.ownPorts().includes(port)) {
      throw new HangarError('E_BAD_REQUEST', `port ${port} is the Hangar agent's own link; it cannot be a preview`);
    }
    this.store.upsert(port, label ?? null, device);
    const previews = await this.changed();
    return previews.find((p) => p.port === port)!;
  }

  async remove(port: number): Promise<void> {
    if (!this.store.remove(port)) throw notAPreview(port);
    for (const stream of this.live.get(port) ?? []) {
      stream.close({ code: PREVIEW_REMOVED, message: `preview of port ${port} was removed` }, { flush: false });
    }
    this.live.delete(port);
    for (const relay of this.liveLanes.get(port) ?? [])
      relay.close(closeReasonBytes(PREVIEW_REMOVED, `preview of port ${port} was removed`));
    this.liveLanes.delete(port);
    await this.changed();
  }

  /** A registered preview, and room on this link for one more of its connections: else the error. */
  private checkRoom(port: number, mux: Mux): void {
    if (!this.store.get(port)) throw notAPreview(port);
    const max = this.options.maxConnectionsPerLink ?? DEFAULT_MAX_CONNECTIONS_PER_LINK;
    if ((this.perLink.get(mux) ?? 0) >= max) {
      throw new HangarError('E_UNAVAILABLE', `this link already has ${max} preview connections open; close some`);
    }
  }

  /** Counts a connection against its link from now (one still dialing counts too); the returned call uncounts it, once. */
  private countConnection(mux: Mux): () => void {
    this.perLink.set(mux, (this.perLink.get(mux) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.perLink.set(mux, (this.perLink.get(mux) ?? 1) - 1);
    };
  }

  /**
   * Connects to the registered port on loopback and opens the caller's stream for it. The
   * socket stays paused until start(), so no byte overtakes the answer.
   */
  async connect(port: number, mux: Mux, streamId: number): Promise<PreviewConnection> {
    this.checkRoom(port, mux);
    if (mux.getStream(streamId)) throw new HangarError('E_BAD_REQUEST', `stream ${streamId} is already in use`);
    const release = this.countConnection(mux);
    let dialed: { socket: Socket; address: Loopback; reads?: PooledReads };
    try {
      dialed = await this.dial(port);
    } catch (error) {
      release();
      throw error;
    }
    const { socket, address, reads } = dialed;
    const refusal = !this.store.get(port)
      ? notAPreview(port) // removed while we dialed: its connections were cut, this one too
      : mux.closed || mux.getStream(streamId)
        ? new HangarError('E_UNAVAILABLE', 'the link closed while connecting')
        : undefined;
    if (refusal) {
      socket.destroy();
      release();
      throw refusal;
    }
    const stream = mux.openStream({ id: streamId, window: PREVIEW_STREAM_WINDOW, maxFrameBytes: PREVIEW_FRAME_BYTES });
    this.track(port, stream, release);
    void spliceSocket(socket, stream, { later: afterThisTask, reads, writes: HandleWrites.of(socket) }).then((reason) =>
      this.options.logger.debug({ port, reason }, 'preview connection ended'),
    );
    return { address, sourcePort: socket.localPort!, start: () => socket.resume() };
  }

  /**
   * A preview connection on a lane (lane/PROTOCOL.md, purpose `preview`): the checks and the dial
   * of connect(), the same errors; once the lane is accepted, the native relay joins the lane's
   * socket and the dev server's (no JavaScript per byte). Counted against the link's connections.
   */
  async takeLane(port: number, mux: Mux, native: NativeLanes): Promise<LaneTaken> {
    this.checkRoom(port, mux);
    const release = this.countConnection(mux);
    let socket: Socket;
    try {
      ({ socket } = await this.dial(port, false));
    } catch (error) {
      release();
      throw error;
    }
    const refusal = !this.store.get(port)
      ? notAPreview(port)
      : mux.closed
        ? new HangarError('E_UNAVAILABLE', 'the link closed while connecting')
        : undefined;
    if (refusal) {
      socket.destroy();
      release();
      throw refusal;
    }
    const sourcePort = socket.localPort!;
    // Until the relay has it: a dev server that hangs up meanwhile is seen by the relay (EOF).
    const onError = (error: Error) => this.options.logger.debug({ port, err: error.message }, 'preview socket error');
    socket.on('error', onError);
    return {
      accept: { source_port: sourcePort },
      run: (lane) => {
        // Removed between the answer and now (ACCEPT was on its way): remove() cut this
        // preview's lanes without this one, so it never starts (the acceptor drops it).
        if (!this.store.get(port)) throw notAPreview(port);
        const local = native.adoptSocket(socket);
        let net: { fd: number; pending: Buffer };
        try {
          net = native.adoptSocket(lane.socket);
        } catch (error) {
          closeQuietly(local.fd);
          throw error;
        }
        const relay = relaySockets(native, lane, net, local);
        let relays = this.liveLanes.get(port);
        if (!relays) this.liveLanes.set(port, (relays = new Set()));
        relays.add(relay);
        void relay.ended.then((end) => {
          this.liveLanes.get(port)?.delete(relay);
          release();
          this.options.logger.debug({ port, how: end.how }, 'preview lane ended');
        });
        return relay;
      },
      abandon: () => {
        socket.destroy();
        release();
      },
    };
  }

  private track(port: number, stream: LinkStream, release: () => void): void {
    let streams = this.live.get(port);
    if (!streams) this.live.set(port, (streams = new Set()));
    streams.add(stream);
    stream.onClose(() => {
      this.live.get(port)?.delete(stream);
      release();
    });
  }

  private async dial(port: number, pooled = true): Promise<{ socket: Socket; address: Loopback; reads?: PooledReads }> {
    const failures: string[] = [];
    for (const address of LOOPBACKS) {
      try {
        // A lane's socket goes to the native relay: no pooled reads (it reads nothing in Node).
        const reads = pooled ? new PooledReads(this.readBuffers) : undefined;
        return { socket: await this.dialOne(address, port, reads), address, reads };
      } catch (error) {
        failures.push(`${address}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }
    throw new HangarError(
      'E_UNAVAILABLE',
      `nothing answers on port ${port} on this host's loopback (${failures.join(', ')}); start the dev server, listening on localhost or 0.0.0.0`,
    );
  }

  private dialOne(host: Loopback, port: number, reads: PooledReads | undefined): Promise<Socket> {
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true, ...(reads ? { onread: reads.onread } : {}) });
      socket.pause();
      const onError = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      const timer = setTimeout(() => {
        socket.removeListener('error', onError);
        socket.destroy();
        reject(new Error(`no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        // The caller attaches its own error listener before any later I/O event can fire.
        socket.removeListener('error', onError);
        resolve(socket);
      });
    });
  }

  /** Tells every client the previews and candidates as they are now, and returns the previews. */
  private async changed(): Promise<PreviewInfo[]> {
    return (await this.list({ publish: true })).previews;
  }

  /**
   * A link's client watches the listening ports (`on`), or no longer does. The watch runs while at
   * least one link watches: a CLI command or a window showing a terminal costs no looks at /proc.
   */
  watchFor(mux: Mux, on: boolean): void {
    this.saidWatch.add(mux);
    this.endWait(mux);
    if (on && !this.watchers.has(mux) && !mux.closed) {
      this.watchers.set(
        mux,
        mux.onClose(() => this.watchFor(mux, false)),
      );
    } else if (!on) {
      const closing = this.watchers.get(mux);
      if (!closing) return;
      this.watchers.delete(mux);
      void closing.dispose();
    }
    this.setWatching(this.watchers.size > 0);
  }

  /**
   * A client linked. A core that knows preview.watch says on the link at once whether it watches;
   * one from before it never says, and expects the agent to watch while it is linked (as agents
   * did before preview.watch): a link silent for `unsaidWatchMs` is watched for until it closes.
   */
  linked(mux: Mux): void {
    if (mux.closed || this.unsaid.has(mux) || this.saidWatch.has(mux)) return;
    const timer = setTimeout(() => {
      this.endWait(mux);
      this.options.logger.debug('a client that never said preview.watch (a core from before it): watching for it');
      this.watchFor(mux, true);
    }, this.options.unsaidWatchMs ?? DEFAULT_UNSAID_WATCH_MS);
    timer.unref();
    this.unsaid.set(mux, { timer, closed: mux.onClose(() => this.endWait(mux)) });
  }

  /** The link said preview.watch (or closed, or its wait ended): no longer waited for. */
  private endWait(mux: Mux): void {
    const waiting = this.unsaid.get(mux);
    if (!waiting) return;
    this.unsaid.delete(mux);
    clearTimeout(waiting.timer);
    void waiting.closed.dispose();
  }

  /**
   * While a client watches, notices ports that start or stop listening (a dev server started in a
   * session) and tells every client, so nobody has to poll. Off when nobody watches.
   */
  setWatching(on: boolean): void {
    if (on === (this.watchTimer !== undefined)) return;
    this.options.logger.debug({ watchers: this.watchers.size }, on ? 'port watch started' : 'port watch stopped');
    if (!on) {
      clearInterval(this.watchTimer);
      this.watchTimer = undefined;
      return;
    }
    let looking = false;
    const look = () => {
      if (looking) return;
      looking = true;
      this.lookForChanges()
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not list listening ports'))
        .finally(() => (looking = false));
    };
    this.watchTimer = setInterval(look, this.options.watchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS);
    this.watchTimer.unref();
    look(); // the baseline, now: a port that starts from here on is news
  }

  private async lookForChanges(): Promise<void> {
    const fingerprint = await listeningFingerprint();
    if (this.lastFingerprint === undefined) this.lastFingerprint = fingerprint;
    else if (fingerprint !== this.lastFingerprint) await this.changed();
  }

  dispose(): void {
    for (const mux of [...this.unsaid.keys()]) this.endWait(mux);
    for (const subscription of this.watchers.values()) void subscription.dispose();
    this.watchers.clear();
    this.setWatching(false);
    for (const streams of this.live.values()) {
      for (const stream of streams)
        stream.close({ code: 'E_UNAVAILABLE', message: 'agent stopping' }, { flush: false });
    }
    this.live.clear();
    for (const relays of this.liveLanes.values()) {
      for (const relay of relays) relay.close(closeReasonBytes('E_UNAVAILABLE', 'agent stopping'));
    }
    this.liveLanes.clear();
  }
}

/** A lane's CLOSE payload: a CloseReason's JSON. */
function closeReasonBytes(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ code, message }));
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to let go of
  }
}

function toInfo(record: PreviewRecord, listening: boolean): PreviewInfo {
  return { port: record.port, label: record.label, created_at: record.createdAt, listening };
}

function notAPreview(port: number): HangarError {
  return new HangarError('E_NOT_FOUND', `port ${port} is not a preview on this host; add it first`);
}
