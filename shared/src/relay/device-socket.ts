import { HangarError, toHangarError } from '../errors.js';
import type { Ed25519Signer } from '../link/handshake.js';
import { RelayToDevice, type DeviceToRelay, type DeviceView, type HostPresence } from '../protocol/relay.js';
import { RelaySocket, relaySocketUrl, type RelaySocketOptions } from './relay-socket.js';
import { signedSignal } from './statements.js';

/**
 * A device's link to the relay (`/v1/device`): authenticates with an access token (and renews
 * it before it expires, or the relay closes the socket), receives the account's presence and
 * device events, and carries signals to the account's hosts. Reconnects by itself.
 */

export type DeviceSignal = Extract<RelayToDevice, { type: 'signal' }>;
export type DeviceSignalFailure = Extract<RelayToDevice, { type: 'signal.error' }>;

export interface RelayDeviceSocketOptions extends Omit<RelaySocketOptions<RelayToDevice>, 'url' | 'incoming'> {
  relayUrl: string;
  signer: Ed25519Signer;
  /** A valid access token (RelaySession.accessToken refreshes as needed). */
  accessToken: () => Promise<string>;
}

/** Failures of a token renewal that a later attempt may not meet. */
const TRANSIENT: ReadonlySet<string> = new Set(['E_UNAVAILABLE', 'E_TIMEOUT', 'E_RATE_LIMITED']);

/** Renew the socket's token this long before the relay would close it. */
const RENEW_MARGIN_MS = 60_000;

export class RelayDeviceSocket extends RelaySocket<RelayToDevice, DeviceToRelay> {
  /** Every host of the account after each connect, then every change. */
  readonly onPresence = this.messageEvent('presence', (message): HostPresence => message.host);
  readonly onHostRemoved = this.messageEvent('host.removed', (message) => message.host_id);
  readonly onDevicePending = this.messageEvent('device.pending', (message): DeviceView => message.device);
  readonly onDeviceChanged = this.messageEvent('device.changed', (message): DeviceView => message.device);
  readonly onSignal = this.messageEvent('signal', (message): DeviceSignal => message);
  readonly onSignalError = this.messageEvent('signal.error', (message): DeviceSignalFailure => message);
  private renewTimer: unknown;
  private ready = false;
  /** A renewal was sent and not yet answered with `ready`. */
  private renewing = false;

  constructor(private readonly device: RelayDeviceSocketOptions) {
    super({ ...device, url: relaySocketUrl(device.relayUrl, 'device'), incoming: RelayToDevice });
  }

  get isReady(): boolean {
    return this.ready && this.isOpen;
  }

  protected onOpen(): void {
    this.ready = false;
    this.renewing = false;
    this.authenticate();
  }

  /** The token renewal on an open socket (the relay answers `ready` again, or refuses it). */
  private renew(): void {
    this.renewing = true;
    this.authenticate();
  }

  /**
   * The relay refused a renewal for its rate limit (socket renewals per account): asked again once
   * it says there is room, at least a second on, so that the socket is not closed when its token
   * runs out (4002, "relay unreachable" until it reconnects); a token that runs out meanwhile
   * closes it as before, and it reconnects.
   */
  private renewLater(details: Record<string, unknown> | undefined): void {
    const retryAfter = typeof details?.['retry_after_ms'] === 'number' ? details['retry_after_ms'] : 0;
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => this.renew(), Math.max(1_000, retryAfter));
  }

  private authenticate(): void {
    this.device.accessToken().then(
      (access_token) => this.send({ type: 'auth', access_token }),
      (error: unknown) => {
        const failure = toHangarError(error);
        // A relay that went away mid-renewal is no reason to give up; a refused session is.
        if (TRANSIENT.has(failure.code)) this.redial(`could not renew the access token (${failure.code})`);
        else this.stop(failure);
      },
    );
  }

  protected onMessage(message: RelayToDevice): void {
    switch (message.type) {
      case 'ready': {
        const first = !this.ready;
        this.ready = true;
        clearTimeout(this.renewTimer);
        this.renewing = false;
        const renewIn = Math.max(1_000, message.expires_at - Date.now() - RENEW_MARGIN_MS);
        this.renewTimer = setTimeout(() => this.renew(), renewIn);
        if (first) this.setOnline();
        return;
      }
      case 'error':
        if (message.error.code === 'E_AUTH_DEVICE_REVOKED') this.stop(HangarError.from(message.error));
        else if (message.error.code === 'E_RATE_LIMITED' && this.renewing) this.renewLater(message.error.details);
        return;
      // The rest (presence, signals, device changes) are this socket's events (messageEvent).
    }
  }

  /** Sends a signed signal to a host of the account (recipientKey: the host's pinned key). */
  sendSignal(f: { toHost: string; recipientKey: string; requestId: string; payload: string }): boolean {
    if (!this.isReady) return false;
    this.send({ ...signedSignal(this.device.signer, f), to_host: f.toHost });
    return true;
  }

  /**
   * Sends a signal and resolves with the host's first answer on the same request_id; rejects
   * with the relay's error (E_TIMEOUT after 10 s, E_HOST_OFFLINE, E_RATE_LIMITED …).
   */
  request(f: { toHost: string; recipientKey: string; requestId: string; payload: string }): Promise<DeviceSignal> {
    return new Promise((resolve, reject) => {
      const answers = this.onSignal((message) => {
        if (message.request_id !== f.requestId || message.from_host.host_id !== f.toHost) return;
        done();
        resolve(message);
      });
      const failures = this.onSignalError((message) => {
        if (message.request_id !== f.requestId) return;
        done();
        reject(HangarError.from(message.error));
      });
      // The relay's E_TIMEOUT cannot arrive on a socket that died: fail with the socket.
      const closes = this.onState((state) => {
        if (state.state !== 'offline') return;
        done();
        reject(state.error);
      });
      const done = () => {
        answers.dispose();
        failures.dispose();
        closes.dispose();
      };
      if (!this.sendSignal(f)) {
        done();
        reject(new HangarError('E_UNAVAILABLE', 'not connected to the relay; try again when it is back'));
      }
    });
  }

  override dispose(): void {
    clearTimeout(this.renewTimer);
    super.dispose();
  }
}
