import {
  afterThisTask,
  HandleWrites,
  HangarError,
  LanePreviewAccept,
  PREVIEW_FRAME_BYTES,
  PREVIEW_STREAM_WINDOW,
  PooledReads,
  ReadBufferPool,
  spliceSocket,
  toHangarError,
  type Disposable,
  type HostRecord,
  type LinkStream,
} from '@hangar/shared';
import { closeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { relaySockets, type NativeLanes, type Relay } from '@hangar/lane';
import type { Logger } from 'pino';
import type { HostConnection } from '../connection/host-connection.js';
import { lanesHere, openLane, type OpenedLane } from '../link/lanes.js';
import { readAcceptedIntoPool } from './accepted-reads.js';
import { checkRequestHead, plainResponse } from './request-guard.js';

/**
 * Buffers the browser's connections read into (accepted-reads.ts), shared by every preview of
 * this core, each back once the host has acked its bytes. Each connection holds one while open.
 */
const PREVIEW_READ_BUFFERS = new ReadBufferPool(64 * 1024, 16);

/** What a forwarder needs from a host connection (HostConnection; tests may pass their own). */
export type PreviewLink = Pick<HostConnection, 'call' | 'link'> &
  Partial<Pick<HostConnection, 'laneTarget'>> & {
    host: Pick<HostRecord, 'name' | 'address' | 'embedded'>;
  };

/**
 * Connections that previews of this core accepted from this computer's loopback, by their
 * source port: shared by every forwarder, to spot a preview whose host dials back into one.
 */
export type LoopbackPeers = Map<number, Socket>;

export interface ForwarderOptions {
  host: string;
  /** The port on the host. */
  port: number;
  /** The connection to use for each new TCP connection (looked up each time: a re-paired host has a new one). */
  connection: () => PreviewLink;
  /** A port on this computer; default: the host's port when free here, else any free one. */
  localPort?: number;
  /** Tried before the default (the port a remembered preview had), without failing if taken. */
  preferLocalPort?: number;
  /**
   * The host is this computer: never take its port by default. The dev server may not be up
   * yet, and would then find its own port taken (and the host's dial would reach us).
   */
  sameMachine: boolean;
  loopbackPeers: LoopbackPeers;
  logger: Logger;
  /** How long a connection answered by the core itself may go on sending; default ANSWERED_LINGER_MS. */
  answeredLingerMs?: number;
}

/**
 * A connection the core answered itself (refused head, 404/502, loop) reads on into nothing so
 * that the browser's close is seen; one that is still open this long after is closed by us: a
 * client that sends without end would otherwise keep the core reading (and dropping) for ever.
 * Long enough for a browser to read the answer and stop sending a body it had under way.
 */
export const ANSWERED_LINGER_MS = 5000;

/**
 * Serves one preview on this computer: listens on 127.0.0.1 and ::1 (the same port on both, so
 * `localhost` means this preview whichever address the browser tries first), checks each
 * connection's first request (request-guard.ts), then carries the connection's bytes over one
 * link stream to the port on the host's loopback. Bytes are not parsed beyond that first head:
 * WebSocket upgrades (HMR), streaming responses and keep-alive pass as they are, with no idle
 * timeout of ours.
 */
export class PreviewForwarder implements Disposable {
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  /** Connections carried by lanes: their native relays. */
  private readonly relays = new Set<Relay>();
  private closed = false;

  private constructor(
    private readonly options: ForwarderOptions,
    readonly localPort: number,
  ) {}

  static async start(options: ForwarderOptions): Promise<PreviewForwarder> {
    const usual = options.sameMachine ? [0] : [options.port, 0];
    const candidates =
      options.localPort !== undefined
        ? [options.localPort]
        : options.preferLocalPort !== undefined
          ? [options.preferLocalPort, ...usual]
          : usual;
    let lastError: unknown;
    for (const candidate of candidates) {
      try {
        const servers = await listenBoth(candidate);
        const forwarder = new PreviewForwarder(options, (servers[0]!.address() as { port: number }).port);
        forwarder.adopt(servers);
        return forwarder;
      } catch (error) {
        lastError = error;
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') break;
      }
    }
    if ((lastError as NodeJS.ErrnoException).code === 'EADDRINUSE' && options.localPort !== undefined) {
      throw new HangarError(
        'E_EXISTS',
        `port ${options.localPort} on this computer is in use; choose another local port, or leave it out to get a free one`,
      );
    }
    throw new HangarError(
      'E_UNAVAILABLE',
      `cannot listen on this computer's loopback: ${toHangarError(lastError).message}`,
    );
  }

  get url(): string {
    return `http://localhost:${this.localPort}/`;
  }

  private adopt(servers: Server[]): void {
    for (const server of servers) {
      this.servers.push(server);
      server.on('connection', (socket) => this.accept(socket));
      // Out of file descriptors, say: new connections fail, the preview keeps serving the rest.
      server.on('error', (error) => this.options.logger.warn({ err: error }, 'preview listener error'));
    }
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peers = this.options.loopbackPeers;
    const source = socket.remotePort;
    const fromLoopback = source !== undefined && isLoopback(socket.remoteAddress);
    if (fromLoopback) peers.set(source, socket);
    // The browser's reads land in pooled buffers, straight from the socket's handle (no
    // 'data' event, nor a tick per read); Node's own reads where this Node does not allow it.
    const pooled = new PooledReads(PREVIEW_READ_BUFFERS);
    const reads = readAcceptedIntoPool(socket, pooled) ? pooled : undefined;
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (fromLoopback && peers.get(source) === socket) peers.delete(source);
      reads?.release();
    });
    let onData: ((chunk: Buffer) => void) | undefined;
    /**
     * Answers without forwarding and ends, reading on into nothing until the browser closes too
     * (a socket that stopped reading would never see it, and stay open), for ANSWERED_LINGER_MS
     * at most.
     */
    const answer = (response: Uint8Array) => {
      if (onData !== undefined) socket.off('data', onData);
      reads?.discard();
      socket.end(response);
      socket.resume();
      const linger = setTimeout(() => socket.destroy(), this.options.answeredLingerMs ?? ANSWERED_LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
    };
    const chunks: Uint8Array[] = [];
    let size = 0;
    /** Each read until the request's head is whole; false once it is (reading then waits). */
    const onHead = (chunk: Uint8Array): boolean => {
      chunks.push(chunk);
      size += chunk.length;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, size);
      const verdict = checkRequestHead(head, this.localPort);
      if (verdict.kind === 'more') return true;
      if (verdict.kind === 'refuse') {
        this.options.logger.warn(
          { host: this.options.host, port: this.options.port, why: verdict.message },
          'preview request refused',
        );
        answer(plainResponse(verdict.status, verdict.message));
        return true;
      }
      socket.pause();
      void this.forward(socket, head, reads, answer);
      return false;
    };
    if (reads !== undefined) {
      reads.beforeSplice = onHead;
    } else {
      const listener = (chunk: Buffer) => {
        if (!onHead(chunk) && onData === listener) socket.off('data', listener);
      };
      socket.on('data', (onData = listener));
    }
    // Until the head is read a broken socket just goes; splice takes over its errors after.
    socket.on('error', (error) => this.options.logger.debug({ err: error }, 'preview client socket error'));
    socket.resume();
  }

  /**
   * `head` goes first; pooled `reads` keep what came before the splice (the head among it) and
   * send it. `answer` ends the connection with a response of ours instead.
   */
  private async forward(
    socket: Socket,
    head: Uint8Array,
    reads: PooledReads | undefined,
    answer: (response: Uint8Array) => void,
  ): Promise<void> {
    const { host, port } = this.options;
    const connection = this.options.connection();
    const native = connection.laneTarget !== undefined ? lanesHere() : undefined;
    if (native !== undefined && !('unavailable' in native)) {
      const onLane = await this.forwardOnLane(socket, head, reads, answer, connection, native);
      if (onLane) return;
    }
    let stream: LinkStream | undefined;
    let sourcePort: number;
    try {
      const mux = await connection.link();
      stream = mux.openStream({ window: PREVIEW_STREAM_WINDOW, maxFrameBytes: PREVIEW_FRAME_BYTES });
      sourcePort = (await connection.call('preview.connect', { port, stream_id: stream.id })).source_port;
    } catch (error) {
      stream?.close({ code: 'cancelled', message: 'preview.connect failed' }, { flush: false });
      this.failed(socket, head, answer, toHangarError(error));
      return;
    }
    if (await this.looped(sourcePort, answer)) {
      stream.close({ code: 'E_UNAVAILABLE', message: 'preview loops back to itself' }, { flush: false });
      return;
    }
    if (socket.destroyed) {
      stream.close({ code: 'eof', message: 'browser went away while connecting' });
      return;
    }
    if (reads === undefined) stream.write(head, { transfer: true });
    void spliceSocket(socket, stream, { later: afterThisTask, reads, writes: HandleWrites.of(socket) });
    socket.resume();
  }

  /** Answers a connection the host could not take as the browser has always been answered. */
  private failed(socket: Socket, head: Uint8Array, answer: (response: Uint8Array) => void, failure: HangarError): void {
    const { host, port } = this.options;
    const status = failure.code === 'E_NOT_FOUND' ? 404 : 502;
    const message =
      failure.code === 'E_NOT_FOUND'
        ? `port ${port} on ${host} is not a preview any more; add it again with: hangar preview add ${host} ${port}`
        : `Hangar could not reach port ${port} on ${host}: ${failure.message}`;
    this.options.logger.info({ host, port, err: failure }, 'preview connection failed');
    if (head[0] === 0x16) socket.destroy();
    else answer(plainResponse(status, message));
  }

  /**
   * After the host dialed the port from `sourcePort`: a loop (a forwarder here listening on the
   * port accepted that very connection: a source port alone may be shared by connections
   * elsewhere) is cut and answered 508, and true returned.
   */
  private async looped(sourcePort: number, answer: (response: Uint8Array) => void): Promise<boolean> {
    const { host, port } = this.options;
    // The host's dial may reach our listener a turn after its answer reaches us.
    await new Promise((resolve) => setImmediate(resolve));
    const looped = this.options.loopbackPeers.get(sourcePort);
    if (!looped || looped.localPort !== port) return false;
    looped.destroy();
    answer(
      plainResponse(
        508,
        `port ${port} on ${host} leads back to this preview: ${host} is this computer and nothing else listens on ` +
          `port ${port}. Start the dev server there, or open the preview on another local port.`,
      ),
    );
    return true;
  }

  /**
   * The connection on a lane of its own (lane/PROTOCOL.md): the native relay carries its bytes,
   * sealed, straight to the agent's relay and the dev server. True once it is done with the
   * connection (relayed, or answered as over the mux: not a preview, unreachable, a loop); false
   * when no lane could be had, and nothing was sent: the caller goes through the mux.
   */
  private async forwardOnLane(
    socket: Socket,
    head: Uint8Array,
    reads: PooledReads | undefined,
    answer: (response: Uint8Array) => void,
    connection: PreviewLink,
    native: NativeLanes,
  ): Promise<boolean> {
    const { host, port } = this.options;
    let lane: OpenedLane;
    try {
      lane = await openLane(connection as Parameters<typeof openLane>[0], { purpose: 'preview', port });
    } catch (error) {
      const failure = toHangarError(error);
      if (
        failure.details?.['lane'] === 'refused' &&
        (failure.code === 'E_NOT_FOUND' || failure.code === 'E_UNAVAILABLE')
      ) {
        this.failed(socket, head, answer, failure);
        return true;
      }
      this.options.logger.debug(
        { host, port, why: (error as Error).message },
        'no lane for a preview connection: using the link',
      );
      return false;
    }
    const accepted = LanePreviewAccept.safeParse(lane.accept);
    if (!accepted.success) {
      lane.socket.destroy();
      this.options.logger.debug({ host, port }, 'a preview lane was accepted without a source port: using the link');
      return false;
    }
    if (await this.looped(accepted.data.source_port, answer)) {
      lane.socket.destroy();
      return true;
    }
    if (socket.destroyed) {
      lane.socket.destroy();
      return true;
    }
    // The lane first: one the agent dropped after ACCEPT (its handle gone) leaves the browser's
    // connection untouched, for the mux to carry; nothing has been sent on it.
    let net: { fd: number; pending: Buffer };
    try {
      net = native.adoptSocket(lane.socket);
    } catch (error) {
      lane.socket.destroy();
      this.options.logger.debug(
        { host, port, why: (error as Error).message },
        'the lane went before its relay: using the link',
      );
      return false;
    }
    let local: { fd: number; pending: Buffer };
    try {
      local = native.adoptSocket(socket);
    } catch (error) {
      closeFd(net.fd);
      this.options.logger.debug(
        { host, port, why: (error as Error).message },
        'cannot hand a browser connection to the lane relay',
      );
      return true; // the browser's connection is gone: nothing to carry
    }
    // What the browser sent so far: the head, and with pooled reads whatever came with it.
    const early = reads !== undefined ? reads.takeEarly() : [head];
    const toNet = Buffer.concat([...early, local.pending]);
    try {
      const relay = relaySockets(native, lane, net, local, toNet);
      this.relays.add(relay);
      void relay.ended.then((end) => {
        this.relays.delete(relay);
        if (end.how === 'error') this.options.logger.debug({ host, port, why: end.message }, 'preview lane broke');
      });
    } catch (error) {
      closeFd(local.fd);
      closeFd(net.fd);
      this.options.logger.warn({ host, port, err: toHangarError(error) }, 'could not start a preview lane relay');
    }
    return true;
  }

  dispose(): Promise<void> {
    this.closed = true;
    for (const relay of this.relays) relay.close();
    this.relays.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    return Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    ).then(() => undefined);
  }
}

/**
 * 127.0.0.1 first (it decides the port when `port` is 0), then ::1 on the same port. A port taken
 * on ::1 alone (a local dev server on [::1]:5173) counts as taken: `localhost` would reach that
 * server instead of the preview in browsers that try ::1 first. No IPv6 here: 127.0.0.1 alone.
 */
async function listenBoth(port: number): Promise<Server[]> {
  const v4 = await listen('127.0.0.1', port);
  const chosen = (v4.address() as { port: number }).port;
  try {
    return [v4, await listen('::1', chosen)];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return [v4];
    await new Promise<void>((resolve) => v4.close(() => resolve()));
    throw error;
  }
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    // Paused: a socket's reads may then go into pooled buffers (accepted-reads.ts) before any starts.
    const server = createServer({ pauseOnConnect: true });
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}
