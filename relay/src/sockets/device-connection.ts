import type { WebSocket } from 'ws';
import {
  DeviceToRelay,
  HangarError,
  RELAY_CLOSE,
  toHangarError,
  type ErrorShape,
  type HostPresence,
  type RelayToDevice,
} from '@hangar/shared';
import { isTrusted } from '../api/call.js';
import { authenticate } from '../api/routes.js';
import { hostPresence, type RelayContext } from '../context.js';
import { Connection } from './connection.js';
import { MAX_SOCKETS_PER_DEVICE, type SocketHub } from './hub.js';
import { routeSignal } from './signaling.js';

/**
 * One device's socket (`/v1/device`). The first message is `auth` with an access token; the
 * socket then lives until that token expires, unless the device sends a fresh `auth` first
 * (same device only). A trusted device receives every host of the account at once and every
 * change after. A pending one receives only news of itself (`device.changed` when approved, and
 * from then on what a trusted device gets); it may not signal (isTrusted in api/call.ts).
 */
export class DeviceConnection extends Connection<DeviceToRelay, RelayToDevice> {
  deviceId = '';
  accountId = '';
  deviceKey = '';
  deviceName = '';
  /** The login its latest token was issued for: ending that login closes the socket (hub.ts). */
  sessionId = '';
  /** The device's status by the relay's record, as of auth or the last device.changed about it. */
  deviceStatus = '';
  private ready = false;
  /** Between the hub's taking a new socket and its `ready`: what the hub sent it meanwhile, in order. */
  private held: RelayToDevice[] | undefined;
  /** presence_version last sent per host: events from several replicas may arrive out of order. */
  private readonly versions = new Map<string, number>();

  constructor(socket: WebSocket, ctx: RelayContext, hub: SocketHub) {
    super(socket, DeviceToRelay, ctx, hub, 'device');
    this.serve({
      handle: (message) => this.handle(message),
      authMissing: new HangarError('E_AUTH_REQUIRED', 'send auth with an access token first'),
      closing: () => {
        if (this.ready) this.hub.removeDevice(this);
      },
    });
  }

  private async handle(message: DeviceToRelay): Promise<void> {
    switch (message.type) {
      case 'ping':
        return this.send({ type: 'pong' });
      case 'pong':
        return;
      case 'auth':
        return this.authenticate(message.access_token);
      case 'signal':
        if (!this.ready) {
          return this.fail(
            new HangarError('E_AUTH_REQUIRED', 'send auth with an access token first'),
            RELAY_CLOSE.authFailed,
          );
        }
        return routeSignal(this.ctx, this.hub, { kind: 'device', connection: this }, message);
    }
  }

  private async authenticate(token: string): Promise<void> {
    if (this.ready) {
      // A renewal: the client sends one before its token runs out (about every 10 minutes).
      try {
        this.ctx.limits.take('socketAuth', this.accountId, 'token renewals on device sockets of this account');
      } catch (error) {
        return this.send({ type: 'error', error: toHangarError(error).toJSON() });
      }
    }
    let authed;
    try {
      authed = await authenticate(this.ctx, token);
    } catch (error) {
      return this.authFailed(error);
    }
    if (this.ready && authed.device.id !== this.deviceId) {
      return this.fail(
        new HangarError('E_FORBIDDEN', 'a socket belongs to one device; open another'),
        RELAY_CLOSE.authFailed,
      );
    }
    if (this.closed) return;
    // Closed when the token runs out unless renewed; a revoked device, or an ended login, at once (hub.ts).
    this.failAfter(
      Math.max(0, authed.claims.expiresAt - this.ctx.now()),
      new HangarError('E_AUTH_EXPIRED', 'the access token expired; reconnect with a fresh one'),
      RELAY_CLOSE.authExpired,
    );
    const first = !this.ready;
    this.deviceId = authed.device.id;
    this.accountId = authed.device.account_id;
    this.deviceKey = authed.device.public_key;
    this.deviceName = authed.device.name;
    this.sessionId = authed.claims.sessionId;
    const wasTrusted = this.trusted;
    this.deviceStatus = authed.device.status;
    if (first && !this.hub.hasRoomFor(this.deviceId)) {
      // The newest is refused, never an older one: the oldest is most likely the window's own.
      return this.fail(
        new HangarError(
          'E_RATE_LIMITED',
          // Whole in the close reason too (at most 123 bytes), which is what a client logs.
          `this computer has ${MAX_SOCKETS_PER_DEVICE} connections open to this relay (its window, hangar commands), ` +
            'the most; it retries once one ends',
        ),
        RELAY_CLOSE.rateLimited,
      );
    }
    if (first) {
      // The hub's from now on (what it routes here waits in `held` until `ready` has gone), so that
      // the bus's session.ended or device.revoked finds it.
      this.held = [];
      this.ready = true;
      this.hub.addDevice(this);
    }
    // A logout or a revocation between authenticate's read and now was announced (session.ended,
    // device.revoked) before the hub could match it to this socket and its login: read again, now
    // that any later one will find it, and only then say `ready`: nothing reaches a socket whose
    // login has ended (it is closed with the reason alone).
    try {
      await authenticate(this.ctx, token);
    } catch (error) {
      return this.authFailed(error);
    }
    if (this.closed) return;
    const held = this.held ?? [];
    this.held = undefined;
    this.send({
      type: 'ready',
      device_id: this.deviceId,
      account_id: this.accountId,
      expires_at: authed.claims.expiresAt,
      heartbeat_ms: this.hub.heartbeatMs,
    });
    for (const message of held) this.send(message);
    if (!first) {
      if (this.trusted && !wasTrusted) await this.becameTrusted();
      return;
    }
    await this.ctx.db
      .updateTable('devices')
      .set({ last_seen: this.ctx.now() })
      .where('id', '=', this.deviceId)
      .execute();
    await this.sendSnapshot();
  }

  /** Sends at once, but what the hub routes here before `ready` waits for it; errors go as they come. */
  override send(message: RelayToDevice): void {
    if (this.held !== undefined && message.type !== 'error') this.held.push(message);
    else super.send(message);
  }

  private authFailed(error: unknown): void {
    const hangarError = toHangarError(error);
    const code =
      hangarError.code === 'E_AUTH_DEVICE_REVOKED'
        ? RELAY_CLOSE.revoked
        : hangarError.code === 'E_AUTH_EXPIRED'
          ? RELAY_CLOSE.authExpired
          : RELAY_CLOSE.authFailed;
    this.fail(hangarError, code);
  }

  /** The account trusts it (api/call.ts isTrusted): it gets the account's hosts and news, and may signal. */
  get trusted(): boolean {
    return isTrusted({ status: this.deviceStatus });
  }

  /** Approved while connected: from now on it gets what a trusted device gets, hosts first. */
  async becameTrusted(): Promise<void> {
    this.hub.addDevice(this);
    await this.sendSnapshot();
  }

  /** Every host of the account as it is now (on connect, and after the bus may have missed events). */
  async sendSnapshot(): Promise<void> {
    if (!this.trusted) return;
    const rows = await this.ctx.db.selectFrom('hosts').selectAll().where('account_id', '=', this.accountId).execute();
    for (const row of rows) this.sendPresence(hostPresence(row), row.presence_version);
  }

  sendPresence(host: HostPresence, version: number): void {
    if (!this.trusted) return;
    if ((this.versions.get(host.host_id) ?? -1) >= version) return; // older news than what it has
    this.versions.set(host.host_id, version);
    this.send({ type: 'presence', host });
  }

  protected override logFields(): Record<string, string> {
    return { device_id: this.deviceId };
  }

  protected override errorMessage(error: ErrorShape): RelayToDevice {
    return { type: 'error', error };
  }
}
