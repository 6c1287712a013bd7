import type { Disposable } from '@hangar/shared';
import type { RelayContext } from '../context.js';
import type { RelayTables } from '../store/schema.js';
import { stripeFailure, type StripeApi } from './stripe-api.js';

const DEFAULTS = { intervalMs: 1_000, concurrency: 8, batch: 200 };
/** A failed send waits 2^attempts seconds, at most this long, before the next try. */
const MAX_BACKOFF_MS = 10 * 60_000;

type PendingRow = Pick<RelayTables['usage_records'], 'key' | 'stripe_customer_id' | 'minute_at' | 'send_attempts'>;

/**
 * Sends billed minutes to Stripe as Billing Meter events. The usage_records rows in state
 * `pending` are the outbox: a row becomes `sent` only after Stripe answered, so a relay killed
 * mid-send loses nothing (the row is still pending and is sent again after the restart) and
 * double-bills nothing (the event's identifier and idempotency key are the usage key, and Stripe
 * counts one event per identifier). Runs on one replica at a time, the holder of the background
 * lock (PostgreSQL advisory lock; the only process on SQLite); correctness does not depend on
 * that (a second sender would only resend what Stripe deduplicates), it saves the work.
 */
export class MeterOutbox implements Disposable {
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private scheduled = false;
  private disposed = false;
  private readonly settings: typeof DEFAULTS;

  constructor(
    private readonly ctx: RelayContext,
    private readonly stripe: StripeApi,
    private readonly isLeader: () => boolean,
    options: Partial<typeof DEFAULTS> = {},
  ) {
    this.settings = { ...DEFAULTS, ...options };
    this.timer = setInterval(() => this.wake(), this.settings.intervalMs);
  }

  /** Sends what is pending now (after the round in progress); several wakes make one round. */
  wake(): Promise<void> {
    if (this.scheduled || this.disposed) return this.running;
    this.scheduled = true;
    this.running = this.running
      .then(() => {
        this.scheduled = false;
        return this.drain();
      })
      .catch((error: unknown) => {
        this.ctx.logger.error({ err: error }, 'meter outbox round failed; retrying next round');
      });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (!this.disposed && this.isLeader()) {
      const now = this.ctx.now();
      const rows = await this.ctx.db
        .selectFrom('usage_records')
        .select(['key', 'stripe_customer_id', 'minute_at', 'send_attempts'])
        .where('meter_state', '=', 'pending')
        .where('next_send_at', '<=', now)
        .orderBy('received_at')
        .limit(this.settings.batch)
        .execute();
      if (rows.length === 0) return;
      await this.sendAll(rows);
      if (rows.length < this.settings.batch) return;
    }
  }

  private async sendAll(rows: PendingRow[]): Promise<void> {
    const sent: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < rows.length && !this.disposed) {
        const row = rows[next++]!;
        if (await this.sendOne(row)) sent.push(row.key);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.concurrency, rows.length) }, worker));
    if (sent.length === 0) return;
    await this.ctx.db
      .updateTable('usage_records')
      .set({ meter_state: 'sent', sent_at: this.ctx.now(), last_error: null })
      .where('key', 'in', sent)
      .where('meter_state', '=', 'pending')
      .execute();
    this.ctx.metrics.meterEvents.inc({ outcome: 'sent' }, sent.length);
  }

  /** True once Stripe has the event (now or from an earlier send); failures are recorded on the row. */
  private async sendOne(row: PendingRow): Promise<boolean> {
    try {
      await this.stripe.sendMeterEvent({
        identifier: row.key,
        customer: row.stripe_customer_id!,
        timestamp: row.minute_at,
      });
      return true;
    } catch (error) {
      const failure = stripeFailure('sending a meter event', error);
      const status = failure.details?.['status'] as number | undefined;
      // Stripe already holds an event with this identifier (sent before a crash, past the
      // idempotency key's memory): it is counted once, which is what was wanted.
      if (status === 400 && failure.details?.['stripe_param'] === 'identifier') return true;
      const permanent = status !== undefined && status >= 400 && status < 500 && ![401, 403, 409, 429].includes(status);
      const attempts = row.send_attempts + 1;
      await this.ctx.db
        .updateTable('usage_records')
        .set({
          meter_state: permanent ? 'failed' : 'pending',
          send_attempts: attempts,
          next_send_at: this.ctx.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 20)),
          last_error: failure.message.slice(0, 500),
        })
        .where('key', '=', row.key)
        .execute();
      this.ctx.metrics.meterEvents.inc({ outcome: permanent ? 'failed' : 'retry' });
      if (permanent) {
        this.ctx.logger.error(
          { key: row.key, err: failure },
          'Stripe refused a meter event for good; it stays unbilled',
        );
      } else {
        this.ctx.logger.warn({ key: row.key, attempts, err: failure.message }, 'meter event not sent; will retry');
      }
      return false;
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearInterval(this.timer);
    await this.running;
  }
}
