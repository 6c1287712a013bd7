import { randomBytes } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  DeviceId,
  HangarError,
  HostId,
  SPLICE_AGENT_PATH,
  SPLICE_DEVICE_PATH,
  SPLICE_PROTOCOL,
  SpliceId,
  toHangarError,
  type Disposable,
} from '@hangar/shared';
import { isTrusted, requireTrusted } from '../api/call.js';
import { authenticate } from '../api/routes.js';
import type { BusEvent } from '../bus/bus.js';
import type { RelayContext } from '../context.js';
import { httpStatus } from '../ops/http-status.js';
import type { SocketHub } from './hub.js';

/**
 * Limits of the relayed path, per account (PROTOCOL.md "Relayed links"). Relayed bytes are the
 * relay's one real cost, so they are capped well below what a direct or peer-to-peer link
 * carries: enough for terminals, logs and a preview, not for bulk transfers.
 */
export interface SpliceLimits {
  /** Bytes per second, both directions together, over all of an account's splices. */
  bytesPerSecond: number;
  /** Splices open or waiting for their agent at once. */
  maxOpen: number;
  /** A splice that carried nothing either way for this long is closed (links ping every 2 s). */
  idleMs: number;
  /** The agent must join within this after being asked. */
  joinTimeoutMs: number;
}

export const DEFAULT_SPLICE_LIMITS: SpliceLimits = {
  bytesPerSecond: 8 * 1024 * 1024,
  maxOpen: 8,
  idleMs: 60_000,
  joinTimeoutMs: 10_000,
};

/** The byte bucket holds at most this many seconds of budget (a burst after a quiet spell). */
const BURST_SECONDS = 2;

interface Waiting {
  id: string;
  accountId: string;
  hostId: string;
  deviceId: string;
  /** The login of the device's access token: ending it (logout) closes the splice. */
  sessionId: string;
  device: Duplex;
  head: Buffer;
  timer: NodeJS.Timeout;
}

interface Open {
  accountId: string;
  hostId: string;
  deviceId: string;
  sessionId: string;
  close(why: string): void;
  sockets: [Duplex, Duplex];
  openedAt: number;
  toHost: number;
  toDevice: number;
}

/** A token bucket of bytes: spending may go negative; the answer is how long to wait it off. */
class ByteBudget {
  private tokens: number;
  private updatedAt = Date.now();
  constructor(private readonly perSecond: number) {
    this.tokens = perSecond * BURST_SECONDS;
  }
  spend(bytes: number): number {
    const now = Date.now();
    this.tokens = Math.min(
      this.perSecond * BURST_SECONDS,
      this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond,
    );
    this.updatedAt = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.perSecond) * 1000);
  }
}

/**
 * Splices (Tailscale's DERP, for Hangar's TLS link): a signed-in, approved device asks to reach a
 * host of its own account; the relay asks that host's agent, over its relay socket, to open a
 * second connection for a fresh single-use id; then it copies bytes between the two sockets
 * unchanged. It parses nothing after the two upgrades: the end-to-end TLS session (the agent's
 * pinned certificate, the signed handshake bound to it) runs inside, so the relay sees ciphertext
 * only and can neither read nor complete a link. Limits per account: open splices, bytes per
 * second (by pausing the sending side, so TCP pushes back), idle time.
 */
export class SpliceHub implements Disposable {
  private readonly waiting = new Map<string, Waiting>();
  private readonly open = new Set<Open>();
  private readonly budgets = new Map<string, ByteBudget>();
  private disposed = false;
  private readonly subscription: Disposable;

  constructor(
    private readonly ctx: RelayContext,
    private readonly hub: SocketHub,
    private readonly limits: SpliceLimits = DEFAULT_SPLICE_LIMITS,
    /** Who connected: the socket's peer, or behind --trust-proxy the address the proxy saw (server.ts). */
    private readonly clientAddress: (request: IncomingMessage) => string = (request) =>
      request.socket.remoteAddress ?? 'unknown',
  ) {
    // A revoked device, or an ended login, loses its splices at once, as its device sockets (hub.ts);
    // a host removed from the account loses its own.
    this.subscription = ctx.bus.onEvent((event) => this.ended(event));
  }

  private ended(event: BusEvent): void {
    if (event.t === 'host.removed') {
      // Out of the account: no more bytes to or from it through here, waiting or open.
      for (const waiting of [...this.waiting.values()]) {
        if (waiting.hostId !== event.host_id) continue;
        clearTimeout(waiting.timer);
        this.waiting.delete(waiting.id);
        waiting.device.destroy();
      }
      for (const splice of [...this.open]) if (splice.hostId === event.host_id) splice.close('the host was removed');
      return;
    }
    if (event.t === 'device.changed' && !isTrusted(event.device)) {
      // Needs approval again (api/devices.ts settleTrust): a pending device holds no relayed link.
      return this.endFor(() => true, event.device.device_id, 'the device needs approval again');
    }
    if (event.t !== 'device.revoked' && event.t !== 'session.ended') return;
    const sessionId = event.t === 'session.ended' ? event.session_id : undefined;
    this.endFor(
      (s) => sessionId === undefined || s.sessionId === sessionId,
      event.device_id,
      event.t === 'device.revoked' ? (event.reason ?? 'the device was revoked') : 'the login was ended',
    );
  }

  /** Ends the device's splices, waiting or open, that `which` picks. */
  private endFor(which: (s: { sessionId: string }) => boolean, deviceId: string, why: string): void {
    const ends = (s: { deviceId: string; sessionId: string }) => s.deviceId === deviceId && which(s);
    for (const waiting of [...this.waiting.values()]) {
      if (!ends(waiting)) continue;
      clearTimeout(waiting.timer);
      this.waiting.delete(waiting.id);
      waiting.device.destroy();
    }
    for (const splice of [...this.open]) if (ends(splice)) splice.close(why);
  }

  /** Whether an HTTP upgrade is one of ours (the others are WebSockets). */
  handles(request: IncomingMessage): boolean {
    const path = (request.url ?? '').split('?')[0];
    return path === SPLICE_DEVICE_PATH || path === SPLICE_AGENT_PATH;
  }

  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (error) => this.ctx.logger.debug({ err: error.message }, 'splice socket error'));
    if (this.disposed) return refuse(socket, new HangarError('E_UNAVAILABLE', 'the relay is shutting down; reconnect'));
    if ((request.headers.upgrade ?? '').toLowerCase() !== SPLICE_PROTOCOL) {
      return refuse(socket, new HangarError('E_BAD_REQUEST', `expected Upgrade: ${SPLICE_PROTOCOL}`));
    }
    const path = (request.url ?? '').split('?')[0];
    const work =
      path === SPLICE_DEVICE_PATH ? this.fromDevice(request, socket, head) : this.fromAgent(request, socket, head);
    work.catch((error: unknown) => {
      const failure = toHangarError(error);
      if (failure.code === 'E_INTERNAL') this.ctx.logger.error({ err: error }, 'splice failed');
      this.ctx.metrics.splices.inc({ outcome: failure.code });
      this.ctx.metrics.errors.inc({ code: failure.code });
      refuse(socket, failure);
    });
  }

  private async fromDevice(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const ip = this.clientAddress(request);
    this.ctx.limits.take('socket', ip, 'connections from this address');
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    const authed = await authenticate(this.ctx, token);
    const device = requireTrusted(authed.device, 'a relayed link');
    const hostId = HostId.safeParse(request.headers['hangar-host']);
    if (!hostId.success) throw new HangarError('E_BAD_REQUEST', `Hangar-Host: ${hostId.error.issues[0]!.message}`);
    this.ctx.limits.take('splice', device.account_id, 'relayed connections opened for this account');
    const host = await this.ctx.db
      .selectFrom('hosts')
      .select(['id', 'online'])
      .where('id', '=', hostId.data)
      .where('account_id', '=', device.account_id)
      .executeTakeFirst();
    if (host === undefined) throw new HangarError('E_NOT_FOUND', `no host ${hostId.data} in this account`);
    if (host.online !== 1) {
      throw new HangarError('E_HOST_OFFLINE', 'the host is offline (its agent is not connected to the relay)');
    }
    const inUse = this.countFor(device.account_id);
    if (inUse >= this.limits.maxOpen) {
      throw new HangarError(
        'E_RATE_LIMITED',
        `this account already has ${inUse} relayed connections open, the most the relay allows (${this.limits.maxOpen}); ` +
          'close a window or a command linked through the relay, or reach the host directly (same LAN, Tailscale)',
        { retry_after_ms: 5000 },
      );
    }
    if (this.disposed || socket.destroyed) return;
    const id = randomBytes(32).toString('hex');
    const waiting: Waiting = {
      id,
      accountId: device.account_id,
      hostId: host.id,
      deviceId: DeviceId.parse(device.id),
      sessionId: authed.claims.sessionId,
      device: socket,
      head,
      timer: setTimeout(() => {
        if (this.waiting.get(id) !== waiting) return;
        this.waiting.delete(id);
        this.ctx.metrics.splices.inc({ outcome: 'E_TIMEOUT' });
        refuse(
          socket,
          new HangarError(
            'E_TIMEOUT',
            `the host did not answer the relay within ${this.limits.joinTimeoutMs / 1000} s; is its agent up to date?`,
          ),
        );
      }, this.limits.joinTimeoutMs),
    };
    this.waiting.set(id, waiting);
    socket.once('close', () => {
      if (this.waiting.get(id) !== waiting) return;
      clearTimeout(waiting.timer);
      this.waiting.delete(id);
    });
    // A revocation, logout or loss of approval since authenticate's read was announced before it
    // could find this splice: read again, now that any later one will.
    try {
      requireTrusted((await authenticate(this.ctx, token)).device, 'a relayed link');
    } catch (error) {
      clearTimeout(waiting.timer);
      if (this.waiting.get(id) === waiting) this.waiting.delete(id);
      throw error;
    }
    await this.hub.sendToHost(host.id, { type: 'splice', splice_id: id, device_id: waiting.deviceId });
    await this.ctx.audit.record(
      { accountId: device.account_id, actor: `device:${device.id}`, ip, requestId: null },
      'splice.requested',
      { host_id: host.id },
    );
  }

  private async fromAgent(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const id = SpliceId.safeParse(request.headers['hangar-splice']);
    // Same answer for a malformed, unknown, used or expired id: nothing to learn by guessing.
    const waiting = id.success ? this.waiting.get(id.data) : undefined;
    if (waiting === undefined) throw new HangarError('E_NOT_FOUND', 'no such splice (unknown, used, or expired)');
    this.waiting.delete(waiting.id);
    clearTimeout(waiting.timer);
    if (waiting.device.destroyed) {
      socket.destroy();
      return;
    }
    const splice: Open = {
      accountId: waiting.accountId,
      hostId: waiting.hostId,
      deviceId: waiting.deviceId,
      sessionId: waiting.sessionId,
      close: () => undefined,
      sockets: [waiting.device, socket],
      openedAt: Date.now(),
      toHost: 0,
      toDevice: 0,
    };
    this.open.add(splice);
    this.ctx.metrics.splices.inc({ outcome: 'opened' });
    this.ctx.metrics.splicesOpen.set(this.open.size);
    const switching = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SPLICE_PROTOCOL}\r\n\r\n`;
    waiting.device.write(switching);
    socket.write(switching);
    // Whatever either sent after its request's headers belongs to the other side.
    if (waiting.head.length > 0) socket.write(waiting.head);
    if (head.length > 0) waiting.device.write(head);
    this.pump(splice, waiting.device, socket, 'to_host');
    this.pump(splice, socket, waiting.device, 'to_device');
    let closed = false;
    const close = (why: string) => {
      if (closed) return;
      closed = true;
      this.open.delete(splice);
      this.ctx.metrics.splicesOpen.set(this.open.size);
      for (const side of splice.sockets) {
        // Let what is buffered go out, but never wait on a peer that stopped reading.
        side.end();
        setTimeout(() => side.destroy(), 5000).unref();
      }
      this.ctx.logger.info(
        { host_id: splice.hostId, device_id: splice.deviceId, why, to_host: splice.toHost, to_device: splice.toDevice },
        'splice closed',
      );
      void this.ctx.audit
        .record(
          { accountId: splice.accountId, actor: `device:${splice.deviceId}`, ip: null, requestId: null },
          'splice.closed',
          {
            host_id: splice.hostId,
            duration_ms: Date.now() - splice.openedAt,
            bytes_to_host: splice.toHost,
            bytes_to_device: splice.toDevice,
            why,
          },
        )
        .catch((error: unknown) => this.ctx.logger.error({ err: error }, 'could not audit a splice'));
    };
    splice.close = close;
    for (const side of splice.sockets) {
      side.on('close', () => close('a side closed'));
      side.on('end', () => close('a side ended'));
      if ('setTimeout' in side && typeof side.setTimeout === 'function') {
        (side as Duplex & { setTimeout(ms: number, cb: () => void): void }).setTimeout(this.limits.idleMs, () =>
          close('idle'),
        );
      }
    }
    this.ctx.logger.info({ host_id: splice.hostId, device_id: splice.deviceId }, 'splice open');
    await this.ctx.audit.record(
      {
        accountId: splice.accountId,
        actor: `host:${splice.hostId}`,
        ip: this.clientAddress(request),
        requestId: null,
      },
      'splice.opened',
      { host_id: splice.hostId, device_id: splice.deviceId },
    );
  }

  /**
   * Copies `from` to `to` as they come, counting bytes against the account's budget: `from` is
   * paused while `to` cannot take more (its buffer is full) or while the account is over budget.
   */
  private pump(splice: Open, from: Duplex, to: Duplex, direction: 'to_host' | 'to_device'): void {
    let budget = this.budgets.get(splice.accountId);
    if (budget === undefined) this.budgets.set(splice.accountId, (budget = new ByteBudget(this.limits.bytesPerSecond)));
    const counter = this.ctx.metrics.splicedBytes.labels({ direction });
    let blockedOnDrain = false;
    let blockedOnBudget = false;
    const maybeResume = () => {
      if (!blockedOnDrain && !blockedOnBudget) from.resume();
    };
    from.on('data', (chunk: Buffer) => {
      if (direction === 'to_host') splice.toHost += chunk.length;
      else splice.toDevice += chunk.length;
      counter.inc(chunk.length);
      if (!to.write(chunk)) {
        blockedOnDrain = true;
        from.pause();
        to.once('drain', () => {
          blockedOnDrain = false;
          maybeResume();
        });
      }
      const waitMs = budget.spend(chunk.length);
      if (waitMs > 0 && !blockedOnBudget) {
        blockedOnBudget = true;
        from.pause();
        setTimeout(() => {
          blockedOnBudget = false;
          maybeResume();
        }, waitMs).unref();
      }
    });
  }

  private countFor(accountId: string): number {
    let count = 0;
    for (const w of this.waiting.values()) if (w.accountId === accountId) count++;
    for (const o of this.open) if (o.accountId === accountId) count++;
    return count;
  }

  dispose(): void {
    this.disposed = true;
    this.subscription.dispose();
    for (const waiting of this.waiting.values()) {
      clearTimeout(waiting.timer);
      waiting.device.destroy();
    }
    this.waiting.clear();
    for (const splice of this.open) for (const side of splice.sockets) side.destroy();
    this.open.clear();
    this.ctx.metrics.splicesOpen.set(0);
  }
}

/** An HTTP error answer on a socket that asked to upgrade, in the relay's error shape; then closed. */
function refuse(socket: Duplex, error: HangarError): void {
  if (socket.destroyed) return;
  const status = httpStatus(error.code);
  const body = JSON.stringify({ error: error.toJSON() });
  const retryAfter = error.details?.['retry_after_ms'];
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (typeof retryAfter === 'number' ? `Retry-After: ${Math.max(1, Math.ceil(retryAfter / 1000))}\r\n` : '') +
      'Connection: close\r\n\r\n' +
      body,
  );
}
