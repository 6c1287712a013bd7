import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP relay between a client and an agent. It records every byte that crosses it
 * (a capture of the wire) and can cut all connections at once (a network blip), or hold them
 * open while dropping traffic (a link that looks up but carries nothing).
 */
export class TcpProxy implements AsyncDisposable {
  readonly captured: Buffer[] = [];
  private readonly sockets = new Set<Socket>();
  /** Each connection's client side: its first bytes (up to 16) and the other end. */
  private readonly connections = new Map<Socket, { first: Buffer; upstream: Socket }>();
  private blackhole: false | 'both' | 'fromTarget' = false;
  private refusing = false;
  /** Each byte reaches the other end this long after it came (setDelay): a link far away. */
  private delayMs = 0;
  /** What the target sends on connections whose client began with `prefix` crosses this much later. */
  private answerDelay: { prefix: Buffer; ms: number } | undefined;
  /** Connections whose client began with `prefix` get this many bytes of the target's, then nothing. */
  private stall: { prefix: Buffer; afterBytes: number } | undefined;
  /** Connections whose client began with `prefix` are closed once that is seen. */
  private refusedPrefix: Buffer | undefined;
  /** Bytes held back by the stall so far (the test waits for them to know it took hold). */
  stalledBytes = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const proxy = new TcpProxy(server, port);
    server.on('connection', (client) => proxy.relay(client, targetPort));
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get capturedBytes(): Buffer {
    return Buffer.concat(this.captured);
  }

  private relay(client: Socket, targetPort: number): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const connection = { first: Buffer.alloc(0), upstream };
    this.connections.set(client, connection);
    client.on('close', () => this.connections.delete(client));
    let passed = 0;
    /** Held by a stall: the target's end does not reach the client either (only a cut ends it). */
    let stalledHere = false;
    client.on('data', (chunk: Buffer) => {
      if (connection.first.length < 16) connection.first = Buffer.concat([connection.first, chunk]).subarray(0, 16);
      const refused = this.refusedPrefix;
      if (refused && connection.first.subarray(0, refused.length).equals(refused)) {
        client.destroy();
        upstream.destroy();
      }
    });
    /** The part of a chunk from the target that a stall lets through (all of it without one). */
    const throughStall = (chunk: Buffer): Buffer => {
      const stall = this.stall;
      if (!stall || !connection.first.subarray(0, stall.prefix.length).equals(stall.prefix)) return chunk;
      const room = Math.max(0, stall.afterBytes - passed);
      passed += Math.min(room, chunk.length);
      this.stalledBytes += Math.max(0, chunk.length - room);
      if (chunk.length > room) stalledHere = true;
      return chunk.subarray(0, room);
    };
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
    const pipe = (from: Socket, to: Socket) => {
      // Delayed chunks wait in order, each until its time (a later, shorter delay never overtakes).
      const queue: { chunk: Buffer; at: number }[] = [];
      let timer: NodeJS.Timeout | undefined;
      let drain: () => void;
      from.on('data', (chunk: Buffer) => {
        if (this.blackhole === 'both' || (this.blackhole === 'fromTarget' && from === upstream)) return;
        if (from === upstream) chunk = throughStall(chunk);
        if (chunk.length === 0) return;
        this.captured.push(Buffer.from(chunk));
        const delayMs = this.delayMs + (from === upstream ? this.answerDelayOf(connection.first) : 0);
        if (delayMs === 0 && queue.length === 0) {
          to.write(chunk);
          return;
        }
        queue.push({ chunk, at: performance.now() + delayMs });
        timer ??= setTimeout(drain, delayMs);
      });
      // What was sent before the end still arrives (a cut, which destroys both, drops it).
      let ended = false;
      drain = () => {
        timer = undefined;
        while (queue.length > 0 && queue[0]!.at <= performance.now()) to.write(queue.shift()!.chunk);
        if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0]!.at - performance.now()));
        else if (ended) to.end();
      };
      from.on('close', () => {
        ended = true;
        if (from === upstream && stalledHere) return;
        // Bytes still in `to`'s write buffer (a slow reader) go out before its end, as a real
        // network delivers what was sent before a FIN; destroyed at once they were lost.
        if (queue.length === 0 && to.writableLength === 0) to.destroy();
        else if (queue.length === 0) to.end();
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }

  /** Every connection dies at once, as when Wi-Fi drops. New connections still work. */
  cutAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** The connections whose client began with `prefix` die (a lane: "HGLANE/1"); the others go on. */
  cutWhere(prefix: string): number {
    let cut = 0;
    for (const [client, { first, upstream }] of this.connections) {
      if (!first.subarray(0, prefix.length).equals(Buffer.from(prefix))) continue;
      client.destroy();
      upstream.destroy();
      cut++;
    }
    return cut;
  }

  /**
   * On connections whose client began with `prefix` (a lane: "HGLANE/1"), the target's first
   * `afterBytes` bytes cross and the rest is dropped (`stalledBytes` counts it), until cleared with
   * undefined: a connection that stops mid-stream, for a test to cut (cutWhere) at a known point.
   */
  stallWhere(prefix: string | undefined, afterBytes = 0): void {
    this.stall = prefix === undefined ? undefined : { prefix: Buffer.from(prefix), afterBytes };
    this.stalledBytes = 0;
  }

  /** New connections whose client begins with `prefix` are closed at once (undefined: none are). */
  refuseWhere(prefix: string | undefined): void {
    this.refusedPrefix = prefix === undefined ? undefined : Buffer.from(prefix);
  }

  /** Every byte from now on crosses `ms` later, each way (0: at once again, behind what waits). */
  setDelay(ms: number): void {
    this.delayMs = ms;
  }

  /**
   * What the target sends on the connections whose client began with `prefix` (a lane: "HGLANE/1")
   * crosses `ms` later, on top of setDelay's (0: no longer); the other connections are not held.
   */
  setAnswerDelayWhere(prefix: string, ms: number): void {
    this.answerDelay = ms > 0 ? { prefix: Buffer.from(prefix), ms } : undefined;
  }

  private answerDelayOf(first: Buffer): number {
    const held = this.answerDelay;
    return held && first.subarray(0, held.prefix.length).equals(held.prefix) ? held.ms : 0;
  }

  /** New connections are dropped at once, as when the host is unreachable (until cleared). */
  setRefusing(on: boolean): void {
    this.refusing = on;
  }

  /**
   * Keep sockets open but deliver nothing (until cleared); `fromTarget`: only what the target sends
   * is dropped, so a request still arrives and its answer is lost on the way back.
   */
  setBlackhole(on: boolean, direction: 'both' | 'fromTarget' = 'both'): void {
    this.blackhole = on ? direction : false;
  }

  get openConnections(): number {
    return this.sockets.size / 2;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
