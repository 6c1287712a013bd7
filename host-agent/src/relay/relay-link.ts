import {
  iceLifetimeMs,
  iceServersFrom,
  type IceConfig,
  type RtcIceServer,
  RelayAgentSocket,
  toHex,
  verifySignal,
  type Disposable,
  type Ed25519Signer,
  type PresenceRecord,
  type RelaySocketState,
  type StoredStatement,
  type TextSocketLike,
} from '@hangar/shared';
import { closeSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type Database from 'better-sqlite3';
import WebSocket from 'ws';
import type { AgentStore } from '../store/db.js';
import { AGENT_VERSION } from '../version.js';
import { directAddresses, tailnetAddresses, type ListenAddress } from './addresses.js';
import {
  enrollmentChangedFile,
  loadEnrollment,
  openEnrollmentChangedFile,
  recordRelayState,
  voidExpiredFirstLinks,
  type EnrollmentRow,
} from './relay-store.js';
import { noWebRtcYet, type SignalHandler } from './signals.js';
import { applyStatements, reevaluateStatements, type AppliedStatements } from './statements.js';
import { readTailnet, type TailnetStatus } from './tailscale.js';

export interface RelayLinkOptions {
  store: AgentStore;
  /** The host key: answers the relay's challenge, signs presence records and signals. */
  signer: Ed25519Signer;
  /** Where the link server listens (its real port), for the addresses published. */
  listen: () => ListenAddress;
  logger: Logger;
  /** Closes every open link of a device that was just revoked. */
  closeLinksOf: (deviceKey: string) => void;
  signals?: SignalHandler;
  /** Billing (host-agent/src/billing): given each socket, for entitlements and usage records. */
  billing?: RelayBillingAttach;
  /**
   * A device of the account asked the relay for a relayed link to this host: dial the relay back
   * for this splice id and serve the link inside (agent.ts hands it to the link server).
   */
  onSplice?: (request: { relay_url: string; splice_id: string; device_id: string }) => void;
  /**
   * How often the enrollment is looked for where the file `enroll` touches cannot be watched (an
   * `enroll` run while serving is otherwise noticed when it touches that file, without polling).
   */
  pollMs?: number;
  /** How often addresses are re-read while enrolled. */
  addressesEveryMs?: number;
  readTailnet?: () => Promise<TailnetStatus>;
  backoff?: { initialMs: number; maxMs: number };
}

/** What billing hooks onto each relay socket; the returned Disposable goes with the socket. */
export interface RelayBillingAttach {
  attach(socket: RelayAgentSocket, enrollment: { host_id: string; account_id: string }): Disposable;
}

/** The relay link as `status` and host.info show it. */
export interface RelayLinkStatus {
  relay_url: string;
  host_id: string;
  account_id: string;
  name: string;
  state: 'connecting' | 'online' | 'offline' | 'stopped';
  error: string | null;
  since: number;
}

/**
 * The agent's one outbound link to the relay while it is enrolled (RelayAgentSocket: reconnects
 * with backoff and jitter, heartbeats): publishes the addresses a device can reach it at, applies
 * the account's statements after the highest seq stored, and answers signals. Enrolling while
 * serving is noticed within `pollMs`. Owned by the agent's composition root.
 */
type EnrollmentKey = Pick<EnrollmentRow, 'relay_url' | 'host_id' | 'account_id' | 'enrolled_at'>;
const enrollmentKey = (row: EnrollmentKey | undefined): string =>
  row ? `${row.relay_url}|${row.host_id}|${row.account_id}|${row.enrolled_at}` : '';

export class RelayLink implements Disposable {
  private socket: RelayAgentSocket | undefined;
  private billingAttached: Disposable | undefined;
  private current: EnrollmentRow | undefined;
  private record: PresenceRecord = { addresses: [], tailnet: [], version: AGENT_VERSION, issued_at: 0 };
  private linkStatus: RelayLinkStatus | undefined;
  private enrollmentPoll: ReturnType<typeof setInterval> | undefined;
  private enrollmentWatch: FSWatcher | undefined;
  private periodicTimer: ReturnType<typeof setInterval> | undefined;
  private disposed = false;
  private refreshing: Promise<void> | undefined;
  private lastTailnetNote: string | null = null;
  private offlineMessage: string | undefined;

  private constructor(private readonly options: RelayLinkOptions) {}

  /** STUN/TURN servers for WebRTC links, with this host's short-lived TURN credentials (none: host candidates). */
  iceServers(): RtcIceServer[] {
    const held = this.ice;
    if (held === undefined || held.usableUntil <= performance.now()) return [];
    try {
      return iceServersFrom(held.ice.urls, held.ice);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'the relay handed out TURN servers this agent cannot use');
      return [];
    }
  }

  /**
   * The last credentials the relay handed out, and until when they can be used by this process's
   * monotonic clock: from when they came, as long as the relay says they last (iceLifetimeMs).
   */
  private ice: { ice: IceConfig; usableUntil: number } | undefined;

  static start(options: RelayLinkOptions): RelayLink {
    const link = new RelayLink(options);
    link.watchEnrollment();
    link.check();
    return link;
  }

  /**
   * `hangar-agent enroll` (another process) touches enrollmentChangedFile after it saved an
   * enrollment: watched here (inotify, kqueue), an idle agent reads nothing until then. Where the
   * file cannot be watched (some network filesystems; something not a regular file there, such as
   * a symlink, which is never followed), the enrollment is read every pollMs instead.
   */
  private watchEnrollment(): void {
    const dataDir = dirname(this.options.store.db.name);
    const file = enrollmentChangedFile(dataDir);
    const poll = (error: unknown) => {
      this.options.logger.warn(
        { err: error, file },
        'cannot watch for enrollments; reading the enrollment every few seconds instead',
      );
      this.enrollmentWatch?.close();
      this.enrollmentWatch = undefined;
      if (this.disposed || this.enrollmentPoll !== undefined) return;
      this.enrollmentPoll = setInterval(() => this.check(), this.options.pollMs ?? 2_000);
    };
    try {
      closeSync(openEnrollmentChangedFile(dataDir)); // there to be watched, and no symlink
      const watcher = watch(file, { persistent: false }, (event) => {
        // Removed, or replaced by a rename: the watch is on an inode no one writes any more. The
        // file is watched again (made again if missing) and the enrollment read, once per change.
        if (event === 'rename' && watcher === this.enrollmentWatch) {
          watcher.close();
          this.enrollmentWatch = undefined;
          if (!this.disposed) this.watchEnrollment();
        }
        this.check();
      });
      watcher.on('error', poll);
      this.enrollmentWatch = watcher;
    } catch (error) {
      poll(error);
    }
  }

  /** Re-reading addresses and forgetting expired first links: only while enrolled. */
  private setPeriodic(on: boolean): void {
    if (on === (this.periodicTimer !== undefined)) return;
    if (on) this.periodicTimer = setInterval(() => this.periodic(), this.options.addressesEveryMs ?? 30_000);
    else {
      clearInterval(this.periodicTimer);
      this.periodicTimer = undefined;
    }
  }

  status(): RelayLinkStatus | null {
    return this.linkStatus ?? null;
  }

  /** What host.info carries: enough for a device to match this host with the account's list. */
  info(): { host_id: string; relay_url: string; connected: boolean } | null {
    const status = this.linkStatus;
    return status
      ? { host_id: status.host_id, relay_url: status.relay_url, connected: status.state === 'online' }
      : null;
  }

  /**
   * A device was pinned (an enrollment's first link, a code): what it signed, and what the devices
   * it vouches for signed, applies now.
   */
  devicePinned(): void {
    this.report(reevaluateStatements(this.options.store, Date.now()));
  }

  /**
   * The enrollment look's read, prepared once (preparing it at each look, every 2 s, was most of its
   * 0.1-0.2 ms): only the columns that tell one enrollment from another.
   */
  private enrollmentKeyRead: Database.Statement<[], EnrollmentKey> | undefined;

  /** Looks for a new or changed enrollment (`hangar-agent enroll` may run while this serves). */
  private check(): void {
    if (this.disposed) return;
    let enrollment: EnrollmentRow | undefined;
    try {
      this.enrollmentKeyRead ??= this.options.store.db.prepare<[], EnrollmentKey>(
        'SELECT relay_url, host_id, account_id, enrolled_at FROM relay_enrollment WHERE id = 1',
      );
      const seen = this.enrollmentKeyRead.get();
      if (enrollmentKey(seen) === enrollmentKey(this.current)) return;
      enrollment = loadEnrollment(this.options.store);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not read the relay enrollment');
      return;
    }
    if (enrollmentKey(enrollment) === enrollmentKey(this.current)) return;
    this.billingAttached?.dispose();
    this.billingAttached = undefined;
    this.socket?.dispose();
    this.socket = undefined;
    this.current = enrollment;
    this.linkStatus = undefined;
    this.setPeriodic(enrollment !== undefined);
    if (enrollment === undefined) return;
    voidExpiredFirstLinks(this.options.store, Date.now());
    // A first link or a code pairing may have come while serve was not listening to the relay.
    this.devicePinned();
    this.options.logger.info(
      { relay: enrollment.relay_url, host_id: enrollment.host_id, name: enrollment.name },
      'enrolled on a relay: connecting',
    );
    this.setStatus(enrollment, { state: 'connecting', attempt: 0 });
    void this.refreshAddresses()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not read this host’s addresses'))
      .then(() => this.connect(enrollment));
  }

  private connect(enrollment: EnrollmentRow): void {
    if (this.disposed || this.current !== enrollment) return;
    const socket = new RelayAgentSocket({
      relayUrl: enrollment.relay_url,
      hostId: enrollment.host_id,
      signer: this.options.signer,
      socketFactory: (url) =>
        new WebSocket(url, { maxPayload: 4 * 1024 * 1024, handshakeTimeout: 10_000 }) as unknown as TextSocketLike,
      presence: () => ({ ...this.record, issued_at: Date.now() }),
      statementsSeq: () => loadEnrollment(this.options.store)?.statements_seq ?? 0,
      ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
    });
    this.socket = socket;
    this.billingAttached = this.options.billing?.attach(socket, enrollment);
    socket.onState((state) => this.setStatus(enrollment, state));
    socket.onStatements((statements) => this.statements(statements));
    socket.onSplice((request) =>
      this.options.onSplice?.({
        relay_url: enrollment.relay_url,
        splice_id: request.splice_id,
        device_id: request.device_id,
      }),
    );
    socket.onIce((ice) => (this.ice = { ice, usableUntil: performance.now() + iceLifetimeMs(ice, Date.now()) }));
    socket.onSignal((signal) => {
      const hostKey = toHex(this.options.signer.publicKey);
      const valid = verifySignal({
        senderKey: signal.from_device.public_key,
        recipientKey: hostKey,
        requestId: signal.request_id,
        payload: signal.payload,
        signature: signal.signature,
      });
      if (!valid) {
        this.options.logger.warn(
          { device_id: signal.from_device.device_id, request_id: signal.request_id },
          'dropped a signal whose signature does not verify with the sending device key',
        );
        return;
      }
      (this.options.signals ?? noWebRtcYet).onSignal(signal, (payload) =>
        socket.sendSignal({
          toDevice: signal.from_device.device_id,
          recipientKey: signal.from_device.public_key,
          requestId: signal.request_id,
          payload,
        }),
      );
    });
    socket.start();
  }

  private statements(statements: StoredStatement[]): void {
    try {
      this.report(applyStatements(this.options.store, statements, Date.now()));
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not apply statements from the relay');
    }
  }

  private report(applied: AppliedStatements): void {
    const log = this.options.logger;
    for (const outcome of applied.outcomes) {
      const fields = { seq: outcome.seq, kind: outcome.kind, device: outcome.subject_name, signer: outcome.signer };
      if (outcome.result === 'ignored') log.warn({ ...fields, reason: outcome.reason }, 'ignored a statement');
      else if (outcome.result === 'kept') {
        log.warn({ ...fields, reason: outcome.reason }, 'kept a statement without effect');
      } else log.info({ ...fields, result: outcome.result }, 'applied a statement');
    }
    for (const device of applied.unvouched) {
      log.warn(
        { device: device.name, key: device.key },
        'unpinned a device no trusted device vouches for any more (its endorser was revoked): if it is yours, hangar devices approve <name> --yes on a trusted computer lets it in again',
      );
    }
    for (const key of applied.revoked) this.options.closeLinksOf(key);
  }

  /** While enrolled: forgets the secrets of first links past their 7 days, re-reads the addresses. */
  private periodic(): void {
    if (this.current === undefined || this.disposed) return;
    try {
      voidExpiredFirstLinks(this.options.store, Date.now());
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not forget expired first links');
    }
    void this.refreshAddresses().catch((error: unknown) =>
      this.options.logger.warn({ err: error }, 'could not read this host’s addresses'),
    );
  }

  /** Re-reads interfaces and Tailscale; publishes again when what a device can dial changed. */
  private refreshAddresses(): Promise<void> {
    this.refreshing ??= (async () => {
      const tailnet = await (this.options.readTailnet ?? readTailnet)();
      const listen = this.options.listen();
      const tailnetIps = tailnet.state === 'running' ? tailnet.ips : [];
      const published = tailnetAddresses(listen, tailnet);
      const note =
        published.why ??
        (tailnet.state === 'unreadable' ? tailnet.message : null) ??
        (tailnet.state === 'not-running'
          ? `Tailscale is installed but ${tailnet.backend}: no tailnet addresses`
          : null);
      if (note !== this.lastTailnetNote && note !== null) this.options.logger.info({ tailscale: tailnet.state }, note);
      this.lastTailnetNote = note;
      const next = { addresses: directAddresses(listen, tailnetIps), tailnet: published.addresses };
      const changed =
        JSON.stringify([next.addresses, next.tailnet]) !== JSON.stringify([this.record.addresses, this.record.tailnet]);
      this.record = { ...this.record, ...next };
      if (changed && this.socket?.isWelcomed) {
        this.options.logger.info(next, 'addresses changed: publishing them to the relay');
        this.socket.publishPresence();
      }
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private setStatus(enrollment: EnrollmentRow, state: RelaySocketState): void {
    const log = this.options.logger;
    const now = Date.now();
    const base = {
      relay_url: enrollment.relay_url,
      host_id: enrollment.host_id,
      account_id: enrollment.account_id,
      name: enrollment.name,
    };
    let next: RelayLinkStatus;
    if (state.state === 'online') {
      log.info({ relay: enrollment.relay_url, host_id: enrollment.host_id }, 'relay link up: this host is online');
      this.offlineMessage = undefined;
      next = { ...base, state: 'online', error: null, since: now };
    } else if (state.state === 'connecting') {
      // Keeps the last error: "connecting" after a failure still says why the last try failed.
      next = { ...base, state: 'connecting', error: this.linkStatus?.error ?? null, since: now };
    } else {
      const stopped = state.retry_in_ms === null;
      // Said once per cause, not at every retry of a relay that stays away.
      if (stopped || state.error.message !== this.offlineMessage) {
        log.warn(
          { relay: enrollment.relay_url, code: state.error.code, retry_in_ms: state.retry_in_ms },
          stopped ? `relay link stopped: ${state.error.message}` : `relay link down: ${state.error.message}`,
        );
      }
      this.offlineMessage = state.error.message;
      next = { ...base, state: stopped ? 'stopped' : 'offline', error: state.error.message, since: now };
    }
    if (next.state === this.linkStatus?.state && next.error === this.linkStatus.error) return;
    this.linkStatus = next;
    try {
      recordRelayState(this.options.store, enrollment.host_id, {
        state: next.state,
        error: next.error,
        at: now,
        pid: process.pid,
      });
    } catch (error) {
      log.warn({ err: error }, 'could not record the relay link state');
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.enrollmentPoll);
    this.enrollmentWatch?.close();
    this.setPeriodic(false);
    this.billingAttached?.dispose();
    this.socket?.dispose();
    this.socket = undefined;
    if (this.current === undefined) return;
    try {
      // `status` then says no serve holds the link, rather than what this one last saw.
      recordRelayState(this.options.store, this.current.host_id, { state: null, error: null, at: null, pid: null });
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not record that the relay link stopped');
    }
  }
}
