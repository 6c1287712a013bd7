import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Disposable } from '@hangar/shared';
import { sourceKey } from './source-address.js';

export interface PendingLimits {
  /** Connections not yet authenticated, from all sources together. */
  total: number;
  /** The same, from one source (an IPv4 address or an IPv6 /64). */
  perSource: number;
  /** From TCP accept to an authenticated link, at most; then the connection is dropped. */
  deadlineMs: number;
  /** Bytes a peer may send on its WebSocket before it has authenticated. */
  bytesBeforeAuth: number;
}

/**
 * Why these numbers: each pending connection holds a file descriptor and some tens of KB of
 * TLS and WebSocket state, so 256 of them keep an agent under systemd's 1,024 open files with
 * room for its database, tmux and paired links, and cost it a few MB. The handshake's messages
 * are under 2 KB, so 16 KiB is plenty for a device and little to buffer for a peer that lies
 * about a frame's length. A device finishes TLS, the upgrade and the handshake in well under a
 * second; 20 s also bounds a peer that keeps a connection alive with harmless HTTP requests.
 */
export const DEFAULT_PENDING_LIMITS: PendingLimits = {
  total: 256,
  perSource: 16,
  deadlineMs: 20_000,
  bytesBeforeAuth: 16 * 1024,
};

/** A connection between TCP accept and authentication, as the link server sees it. */
export interface PendingConnection {
  readonly source: string;
  /**
   * Calls `onOver` once when the stream has carried more than the pre-authentication allowance
   * (the caller says why and stops reading); should more still come, the connection is destroyed.
   */
  limitBytes(stream: Socket, onOver: (bytes: number) => void): void;
  /** The link authenticated: no longer counted, timed or limited here. */
  authenticated(): void;
}

interface Entry {
  socket: Socket;
  source: string;
  peer: string;
  timer: ReturnType<typeof setTimeout>;
  stopLimiting?: () => void;
}

const WARN_EVERY_MS = 60_000;

/**
 * Counts the connections of peers that have not authenticated (yet), from TCP accept on. When a
 * new one would exceed the cap for its source, the oldest pending connection of that source is
 * dropped for it; when it would exceed the total, the oldest of the source holding the most.
 * So an idle flood can hold at most the caps' worth of descriptors, and the owner, whose
 * connection is the newest and authenticates at once, still gets in.
 */
export class PendingConnections implements Disposable {
  /** In order of arrival: the first of a set is its oldest. */
  private readonly all = new Set<Entry>();
  private readonly bySource = new Map<string, Set<Entry>>();
  private readonly byPeer = new Map<string, Entry>();
  /** Sockets admitted once: the link port's front server admits, and the HTTPS server sees them again. */
  private readonly admitted = new WeakSet<Socket>();
  private dropped = 0;
  private lastWarnAt = 0;

  constructor(
    private readonly limits: PendingLimits,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.all.size;
  }

  /** A TCP connection was accepted (before TLS). */
  admit(socket: Socket): void {
    if (this.admitted.has(socket)) return;
    this.admitted.add(socket);
    if (socket.remoteAddress === undefined) {
      socket.destroy(); // already gone
      return;
    }
    const source = sourceKey(socket.remoteAddress);
    const sameSource = this.bySource.get(source);
    if (sameSource !== undefined && sameSource.size >= this.limits.perSource) {
      this.drop(sameSource.values().next().value!, 'per-source');
    } else if (this.all.size >= this.limits.total) {
      this.drop(this.oldestOfBusiestSource(), 'total');
    }
    const entry: Entry = {
      socket,
      source,
      peer: peerKey(socket),
      timer: setTimeout(() => {
        this.log.debug(
          { source, deadline_ms: this.limits.deadlineMs },
          'dropped a connection that did not authenticate in time',
        );
        this.remove(entry);
        socket.destroy();
      }, this.limits.deadlineMs),
    };
    this.all.add(entry);
    if (sameSource !== undefined) sameSource.add(entry);
    else this.bySource.set(source, new Set([entry]));
    this.byPeer.set(entry.peer, entry);
    socket.once('close', () => this.remove(entry));
  }

  /** The pending connection under a TLS socket (same peer address and port), if still pending. */
  claim(tlsSocket: Socket): PendingConnection | undefined {
    const entry = this.byPeer.get(peerKey(tlsSocket));
    if (entry === undefined) return undefined;
    return {
      source: entry.source,
      limitBytes: (stream, onOver) => {
        let seen = 0;
        const onData = (chunk: Buffer) => {
          const before = seen;
          seen += chunk.length;
          if (seen <= this.limits.bytesBeforeAuth) return;
          if (before <= this.limits.bytesBeforeAuth) onOver(seen);
          else stream.destroy(); // read again after all (ws resumes a socket its parser drained)
        };
        stream.on('data', onData);
        entry.stopLimiting = () => stream.off('data', onData);
      },
      authenticated: () => this.remove(entry),
    };
  }

  dispose(): void {
    for (const entry of [...this.all]) {
      this.remove(entry);
      entry.socket.destroy();
    }
  }

  private oldestOfBusiestSource(): Entry {
    let busiest: Set<Entry> | undefined;
    for (const entries of this.bySource.values()) {
      if (busiest === undefined || entries.size > busiest.size) busiest = entries;
    }
    return busiest!.values().next().value!;
  }

  private drop(entry: Entry, cap: 'per-source' | 'total'): void {
    this.remove(entry);
    entry.socket.destroy();
    this.dropped += 1;
    const now = Date.now();
    if (now - this.lastWarnAt >= WARN_EVERY_MS) {
      this.log.warn(
        { cap, limits: { total: this.limits.total, per_source: this.limits.perSource }, dropped: this.dropped },
        'too many connections that have not authenticated: dropping the oldest for each new one',
      );
      this.lastWarnAt = now;
      this.dropped = 0;
    }
  }

  private remove(entry: Entry): void {
    if (!this.all.delete(entry)) return;
    clearTimeout(entry.timer);
    entry.stopLimiting?.();
    const sameSource = this.bySource.get(entry.source);
    sameSource?.delete(entry);
    if (sameSource?.size === 0) this.bySource.delete(entry.source);
    if (this.byPeer.get(entry.peer) === entry) this.byPeer.delete(entry.peer);
  }
}

/** Address and port of the far end: the same for a TCP socket and the TLS socket over it. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
