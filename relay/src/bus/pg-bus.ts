import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { Emitter, HangarError } from '@hangar/shared';
import type { RelayDb } from '../store/db.js';
import { z } from 'zod';
import { BusEvent, type RelayBus } from './bus.js';

/** A NOTIFY payload: the event itself, or a reference to a stored body when it is too big. */
const BusPayload = z.union([z.object({ e: BusEvent }), z.object({ ref: z.string() })]);

const CHANNEL = 'hangar_relay';
/** NOTIFY payloads must be under 8000 bytes; a larger event goes through bus_messages. */
const MAX_INLINE_BYTES = 7_000;
const RECONNECT_MS = 1_000;

/**
 * Cross-replica events over PostgreSQL LISTEN/NOTIFY. One pooled client is held for LISTEN;
 * if it drops (a database restart) it is replaced, and a local `resync` tells the sockets
 * to send fresh snapshots, since events in the gap are lost.
 */
export class PgBus implements RelayBus {
  private readonly emitter = new Emitter<BusEvent>();
  readonly onEvent = this.emitter.event;
  private listener: pg.PoolClient | undefined;
  private disposed = false;
  private retry: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly db: RelayDb,
    private readonly logger: Logger,
  ) {}

  static async start(pool: pg.Pool, db: RelayDb, logger: Logger): Promise<PgBus> {
    const bus = new PgBus(pool, db, logger);
    await bus.listen();
    return bus;
  }

  private async listen(): Promise<void> {
    const client = await this.pool.connect();
    if (this.disposed) {
      client.release();
      return;
    }
    this.listener = client;
    client.on('notification', (message) => {
      if (message.channel === CHANNEL && message.payload !== undefined) void this.receive(message.payload);
    });
    const lost = (error?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.release(error ?? true);
      if (this.disposed) return;
      this.logger.warn({ err: error }, 'relay bus: LISTEN connection lost; reconnecting');
      this.retry = setTimeout(() => this.reconnect(), RECONNECT_MS);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.query(`LISTEN ${CHANNEL}`);
  }

  private reconnect(): void {
    this.listen().then(
      () => this.emitter.fire({ t: 'resync' }),
      (error: unknown) => {
        this.logger.warn({ err: error }, 'relay bus: cannot LISTEN yet; retrying');
        if (!this.disposed) this.retry = setTimeout(() => this.reconnect(), RECONNECT_MS);
      },
    );
  }

  private async receive(payload: string): Promise<void> {
    try {
      const parsed = BusPayload.parse(JSON.parse(payload));
      if ('e' in parsed) {
        this.emitter.fire(parsed.e);
        return;
      }
      const row = await this.db
        .selectFrom('bus_messages')
        .select('body')
        .where('id', '=', parsed.ref)
        .executeTakeFirst();
      if (row === undefined) throw new HangarError('E_INTERNAL', `bus message ${parsed.ref} is gone`);
      this.emitter.fire(BusEvent.parse(JSON.parse(row.body)));
    } catch (error) {
      this.logger.error({ err: error }, 'relay bus: dropped an event it could not read');
    }
  }

  async publish(event: BusEvent): Promise<void> {
    let payload = JSON.stringify({ e: event });
    if (Buffer.byteLength(payload) > MAX_INLINE_BYTES) {
      const id = randomBytes(16).toString('hex');
      await this.db
        .insertInto('bus_messages')
        .values({ id, body: JSON.stringify(event), created_at: Date.now() })
        .execute();
      payload = JSON.stringify({ ref: id });
    }
    await this.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.retry);
    const client = this.listener;
    this.listener = undefined;
    if (client !== undefined) {
      try {
        await client.query(`UNLISTEN ${CHANNEL}`);
      } finally {
        client.release();
      }
    }
    this.emitter.dispose();
  }
}
