import {
  HangarError,
  decideMeteredJob,
  refusalMessage,
  signUsageRecord,
  usageRecordKey,
  verifyEntitlement,
  type Disposable,
  type Ed25519Signer,
  type Entitlement,
  type RelayAgentSocket,
  type UsageAck,
} from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { AttemptMeter, JobMetering } from '../jobs/index.js';
import { loadEnrollment } from '../relay/relay-store.js';
import type { AgentStore } from '../store/db.js';
import {
  entitlementKeyOf,
  insertMeteredAttempt,
  loadEntitlement,
  meteredAttempt,
  openMeteredAttempts,
  pendingUsage,
  pendingUsageCount,
  forgetUsage,
  recordMinutes,
  saveEntitlement,
  saveEntitlementKey,
  type MeteredAttemptRow,
} from './billing-store.js';

export interface MeteringOptions {
  store: AgentStore;
  /** The host key: signs each usage record (the relay verifies it against the enrolled key). */
  signer: Ed25519Signer;
  logger: Logger;
  now?: () => number;
  /** How often unsent records are looked for, and how long an unanswered batch waits before it is sent again. */
  flushEveryMs?: number;
  resendAfterMs?: number;
}

/** The relay takes up to 500 records a batch (USAGE_BATCH_MAX); two batches in flight at most. */
const BATCH = 500;
const IN_FLIGHT_BATCHES = 2;

/**
 * Billing on the agent (relay/PROTOCOL.md "Billing"): build-job minutes on an enrolled host, one
 * signed usage record per started minute of each attempt, kept in agent.db until the relay
 * acknowledges them (an agent offline for a day sends them when it is back; the relay stores each
 * key once, so a resend counts nothing twice); and the latest entitlement the relay signed, which
 * decides whether a build job may start. Hosts that are not enrolled are never metered or refused.
 * Terminals and previews never come here.
 */
export class Metering implements JobMetering, Disposable {
  private readonly now: () => number;
  private readonly running = new Map<string, { row: MeteredAttemptRow; timer: NodeJS.Timeout | undefined }>();
  private readonly sockets = new Set<() => void>();
  private disposed = false;

  constructor(private readonly options: MeteringOptions) {
    this.now = options.now ?? Date.now;
    // Attempts a crash interrupted: their started minutes were recorded as each began; they end here.
    for (const row of openMeteredAttempts(options.store)) {
      recordMinutes(options.store, row, row.minutes, (m) => this.sign(row, m), this.now(), this.now());
    }
  }

  /** Throws E_PLAN_LIMIT, saying what to do, when this host may not start a build job now. */
  admit(): void {
    this.decide();
  }

  attemptStarted(f: { jobId: string; number: number; startedAt: number }): AttemptMeter | undefined {
    const decision = this.decide();
    if (decision === undefined) return undefined;
    const attemptId = `${f.jobId}:${f.number}`;
    insertMeteredAttempt(this.options.store, {
      attempt_id: attemptId,
      job_id: f.jobId,
      host_id: decision.hostId,
      started_at: f.startedAt,
      minute_ms: decision.minuteMs,
    });
    const row = meteredAttempt(this.options.store, attemptId)!;
    const entry = { row, timer: undefined as NodeJS.Timeout | undefined };
    this.running.set(attemptId, entry);
    this.tick(attemptId);
    return { ended: (at) => this.ended(attemptId, at) };
  }

  /** What `hangar-agent status` and tests read: records not yet acknowledged by the relay. */
  pendingRecords(): number {
    return pendingUsageCount(this.options.store);
  }

  /** The entitlement a build job is checked against now (verified), if any. */
  entitlement(): Entitlement | undefined {
    const enrollment = loadEnrollment(this.options.store);
    return enrollment ? loadEntitlement(this.options.store, enrollment.host_id) : undefined;
  }

  /**
   * The relay link's socket (relay/relay-link.ts calls this for each one it makes): entitlements
   * it pushes are verified and kept; usage records are sent while it is online and forgotten
   * once acknowledged.
   */
  attach(socket: RelayAgentSocket, enrollment: { host_id: string; account_id: string }): Disposable {
    const log = this.options.logger;
    const inFlight = new Map<string, { keys: string[]; sentAt: number }>();
    const flush = () => {
      if (this.disposed || !socket.isWelcomed) return;
      const now = this.now();
      for (const [batch, sent] of inFlight) {
        // An answer lost with a dropped socket: send again (the relay acks what it already holds).
        if (now - sent.sentAt > (this.options.resendAfterMs ?? 30_000)) inFlight.delete(batch);
      }
      while (inFlight.size < IN_FLIGHT_BATCHES) {
        const skip = new Set([...inFlight.values()].flatMap((b) => b.keys));
        const records = pendingUsage(this.options.store, enrollment.host_id, BATCH, skip);
        if (records.length === 0) return;
        const batchId = `u${randomBytes(8).toString('hex')}`;
        if (
          !socket.reportUsage(
            batchId,
            records.map((r) => r.record),
          )
        )
          return;
        inFlight.set(batchId, { keys: records.map((r) => r.key), sentAt: now });
        log.debug({ batch: batchId, records: records.length }, 'usage records sent to the relay');
      }
    };
    const onAck = (ack: UsageAck) => {
      // An ack for a batch given up on (sent again since) still says what the relay holds.
      inFlight.delete(ack.batch_id);
      for (const refused of ack.refused) {
        log.warn({ key: refused.key, code: refused.code }, `the relay refused a usage record: ${refused.message}`);
      }
      const forgotten = forgetUsage(this.options.store, [...ack.acked, ...ack.refused.map((r) => r.key)]);
      log.debug({ batch: ack.batch_id, acked: ack.acked.length, forgotten }, 'usage records acknowledged');
      flush();
    };
    const subscriptions = [
      socket.onEntitlement((entitlement) => this.received(entitlement, socket, enrollment)),
      socket.onUsageAck((ack) => {
        try {
          onAck(ack);
        } catch (error) {
          log.error({ err: error }, 'could not apply a usage acknowledgement');
        }
      }),
      socket.onState((state) => {
        if (state.state === 'online') flush();
        else inFlight.clear(); // their answers went with the socket; sent again once online
      }),
    ];
    const guarded = () => {
      try {
        flush();
      } catch (error) {
        log.error({ err: error }, 'could not send usage records');
      }
    };
    this.sockets.add(guarded);
    const timer = setInterval(guarded, this.options.flushEveryMs ?? 5_000);
    return {
      dispose: () => {
        clearInterval(timer);
        this.sockets.delete(guarded);
        subscriptions.forEach((s) => s.dispose());
      },
    };
  }

  private received(
    entitlement: Entitlement,
    socket: RelayAgentSocket,
    enrollment: { host_id: string; account_id: string },
  ): void {
    const log = this.options.logger;
    try {
      const announced = socket.entitlementKey;
      let key = entitlementKeyOf(this.options.store);
      if (key === null && announced !== undefined) {
        // Enrolled before the relay named its key at enrollment: the first welcome's is kept.
        saveEntitlementKey(this.options.store, enrollment.host_id, announced);
        key = announced;
      } else if (announced !== undefined && key !== announced) {
        log.warn(
          { kept: key, announced },
          'the relay names another entitlement key than the one kept at enrollment: its entitlements are ignored',
        );
        return;
      }
      if (
        key === null ||
        !verifyEntitlement(key, entitlement) ||
        entitlement.host_id !== enrollment.host_id ||
        entitlement.account_id !== enrollment.account_id
      ) {
        log.warn('dropped an entitlement not signed by this host’s relay for this host');
        return;
      }
      const before = loadEntitlement(this.options.store, enrollment.host_id);
      const changed =
        before === undefined ||
        before.plan !== entitlement.plan ||
        before.minutes_left !== entitlement.minutes_left ||
        before.reason !== entitlement.reason;
      // Said when what it allows changes, not at each hourly renewal.
      if (saveEntitlement(this.options.store, entitlement, this.now()) && changed) {
        log.info(
          { plan: entitlement.plan, minutes_left: entitlement.minutes_left, reason: entitlement.reason },
          'entitlement from the relay',
        );
      }
    } catch (error) {
      log.error({ err: error }, 'could not keep an entitlement');
    }
  }

  /** undefined: not metered (not enrolled, or billing off on its relay); throws when refused. */
  private decide(): { hostId: string; minuteMs: number } | undefined {
    const store = this.options.store;
    const enrollment = loadEnrollment(store);
    if (enrollment === undefined) return undefined;
    const entitlement = loadEntitlement(store, enrollment.host_id);
    const decision = decideMeteredJob(
      entitlement !== undefined && entitlement.account_id === enrollment.account_id ? entitlement : undefined,
      { relayKey: entitlementKeyOf(store) ?? '', hostId: enrollment.host_id, now: this.now() },
    );
    if (!decision.allowed) throw decision.error;
    if (!decision.metered) return undefined;
    if (decision.minutes_left !== null) {
      // Minutes recorded here that the relay has not counted yet come off what it allowed.
      const left = decision.minutes_left - pendingUsageCount(store, enrollment.host_id);
      if (left <= 0) {
        throw new HangarError('E_PLAN_LIMIT', refusalMessage('minutes_used_up'), { reason: 'minutes_used_up' });
      }
    }
    return { hostId: enrollment.host_id, minuteMs: entitlement!.minute_ms };
  }

  /** Records every minute begun by now, then waits for the next one to begin. */
  private tick(attemptId: string): void {
    const entry = this.running.get(attemptId);
    if (entry === undefined || this.disposed) return;
    const { row } = entry;
    const now = this.now();
    const begun = Math.floor(Math.max(0, now - row.started_at) / row.minute_ms) + 1;
    this.record(row, begun);
    const next = row.started_at + begun * row.minute_ms;
    entry.timer = setTimeout(() => this.tick(attemptId), Math.max(1, next - this.now()));
  }

  private ended(attemptId: string, at: number): void {
    const entry = this.running.get(attemptId);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.running.delete(attemptId);
    const { row } = entry;
    // Every minute started before the attempt ended is counted; at least the first.
    const started = Math.max(1, Math.ceil(Math.max(0, at - row.started_at) / row.minute_ms));
    this.record(row, started, at);
  }

  private record(row: MeteredAttemptRow, to: number, endedAt?: number): void {
    try {
      const added = recordMinutes(this.options.store, row, to, (m) => this.sign(row, m), this.now(), endedAt);
      if (added > 0) for (const flush of this.sockets) flush();
    } catch (error) {
      this.options.logger.error({ err: error, attempt: row.attempt_id }, 'could not record build minutes');
    }
  }

  private sign(row: MeteredAttemptRow, minuteIndex: number) {
    const record = signUsageRecord(this.options.signer, {
      attempt_id: row.attempt_id,
      job_id: row.job_id,
      minute_index: minuteIndex,
      started_at: row.started_at,
    });
    return { key: usageRecordKey(record), record };
  }

  dispose(): void {
    this.disposed = true;
    // Attempts still running are drained by the job service before this; any left stay open in
    // agent.db and are closed at the next start with the minutes recorded so far.
    for (const entry of this.running.values()) clearTimeout(entry.timer);
    this.running.clear();
  }
}
