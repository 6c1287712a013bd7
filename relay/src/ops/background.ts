import type pg from 'pg';
import type { Disposable } from '@hangar/shared';
import { publishHost } from '../api/hosts.js';
import type { RelayContext } from '../context.js';

/** Every replica says it is alive this often; the hosts it holds get last_seen with it. */
export const REPLICA_HEARTBEAT_MS = 5_000;
/** A replica silent this long is dead: the hosts it held are marked offline by the sweeper. */
export const REPLICA_DEAD_AFTER_MS = 15_000;
/** Any number unique to this application: the session-level advisory lock of the sweeper. */
const SWEEPER_LOCK = 0x68616e67; // "hang"
const ENROLL_TOKEN_KEEP_MS = 24 * 60 * 60_000;
/** An expired invitation is kept this long past its expiry, then deleted. */
const INVITE_KEEP_MS = 24 * 60 * 60_000;
const BUS_MESSAGE_KEEP_MS = 60_000;

/**
 * Background work. Each replica beats its heartbeat; one replica at a time (the holder of a
 * PostgreSQL advisory lock, held by a dedicated session, so it passes to another replica when
 * the holder dies) sweeps: hosts of dead replicas go offline, spent tokens and old bus
 * messages are deleted. With SQLite there is one process, and it is always the sweeper.
 */
export class BackgroundWork implements Disposable {
  private timer: NodeJS.Timeout | undefined;
  private lockClient: pg.PoolClient | undefined;
  private holdsLock = false;
  private running: Promise<void> = Promise.resolve();
  private disposed = false;

  constructor(
    private readonly ctx: RelayContext,
    private readonly pool: pg.Pool | undefined,
  ) {}

  async start(): Promise<void> {
    const now = this.ctx.now();
    await this.ctx.db
      .insertInto('replicas')
      .values({ id: this.ctx.replicaId, started_at: now, heartbeat_at: now })
      .execute();
    if (this.ctx.dialect === 'sqlite') {
      // One process owns the file: whatever the last run left online (kill -9) is offline now.
      await this.ctx.db
        .updateTable('hosts')
        .set((eb) => ({ online: 0, presence_version: eb('presence_version', '+', 1) }))
        .where('online', '=', 1)
        .execute();
      this.holdsLock = true;
    }
    this.timer = setInterval(() => this.tick(), REPLICA_HEARTBEAT_MS);
    await this.tick();
  }

  get isSweeper(): boolean {
    return this.holdsLock;
  }

  /** One round; never overlapping the previous one. */
  tick(): Promise<void> {
    this.running = this.running
      .then(() => this.round())
      .catch((error: unknown) => {
        this.ctx.logger.error({ err: error }, 'background work failed; retrying next round');
      });
    return this.running;
  }

  private async round(): Promise<void> {
    if (this.disposed) return;
    const now = this.ctx.now();
    await this.ctx.db.updateTable('replicas').set({ heartbeat_at: now }).where('id', '=', this.ctx.replicaId).execute();
    await this.ctx.db
      .updateTable('hosts')
      .set({ last_seen: now })
      .where('replica_id', '=', this.ctx.replicaId)
      .where('online', '=', 1)
      .execute();
    if (!(await this.lock())) return;
    await this.sweep(now);
  }

  private async lock(): Promise<boolean> {
    if (this.holdsLock || this.pool === undefined) return this.holdsLock;
    const client = await this.pool.connect();
    const result = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [SWEEPER_LOCK]);
    if (result.rows[0]?.locked !== true) {
      client.release();
      return false;
    }
    this.lockClient = client;
    this.holdsLock = true;
    // If this session dies, PostgreSQL releases the lock; stop claiming to hold it.
    client.on('error', (error) => {
      this.ctx.logger.warn({ err: error }, 'sweeper lock session lost');
      this.holdsLock = false;
      this.lockClient = undefined;
      client.release(error);
    });
    this.ctx.logger.info({ replica: this.ctx.replicaId }, 'this replica runs the background sweeper');
    return true;
  }

  private async sweep(now: number): Promise<void> {
    const live = this.ctx.db
      .selectFrom('replicas')
      .select('id')
      .where('heartbeat_at', '>', now - REPLICA_DEAD_AFTER_MS);
    const orphaned = await this.ctx.db
      .selectFrom('hosts')
      .select('id')
      .where('online', '=', 1)
      .where((eb) => eb.or([eb('replica_id', 'is', null), eb('replica_id', 'not in', live)]))
      .execute();
    for (const { id } of orphaned) {
      const updated = await this.ctx.db
        .updateTable('hosts')
        .set((eb) => ({ online: 0, presence_version: eb('presence_version', '+', 1) }))
        .where('id', '=', id)
        .where('online', '=', 1)
        .where((eb) => eb.or([eb('replica_id', 'is', null), eb('replica_id', 'not in', live)]))
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) await publishHost(this.ctx, id);
    }
    if (orphaned.length > 0) this.ctx.logger.info({ hosts: orphaned.length }, 'hosts of a dead replica marked offline');
    await this.ctx.db
      .deleteFrom('replicas')
      .where('heartbeat_at', '<', now - 60 * REPLICA_DEAD_AFTER_MS)
      .execute();
    await this.ctx.db
      .deleteFrom('enroll_tokens')
      .where('expires_at', '<', now - ENROLL_TOKEN_KEEP_MS)
      .execute();
    await this.ctx.db.deleteFrom('refresh_tokens').where('expires_at', '<', now).execute();
    // Invitations never accepted, a day after they expired (until then the person is told "expired").
    await this.ctx.db
      .deleteFrom('account_members')
      .where('joined_at', 'is', null)
      .where('invite_expires_at', '<', now - INVITE_KEEP_MS)
      .execute();
    await this.ctx.db
      .deleteFrom('bus_messages')
      .where('created_at', '<', now - BUS_MESSAGE_KEEP_MS)
      .execute();
  }

  /** Graceful stop: the hosts this replica held are offline now, not after the sweeper's 15 s. */
  async releaseHosts(): Promise<void> {
    const held = await this.ctx.db
      .selectFrom('hosts')
      .select('id')
      .where('replica_id', '=', this.ctx.replicaId)
      .where('online', '=', 1)
      .execute();
    for (const { id } of held) {
      const updated = await this.ctx.db
        .updateTable('hosts')
        .set((eb) => ({ online: 0, last_seen: this.ctx.now(), presence_version: eb('presence_version', '+', 1) }))
        .where('id', '=', id)
        .where('replica_id', '=', this.ctx.replicaId)
        .where('online', '=', 1)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) await publishHost(this.ctx, id);
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearInterval(this.timer);
    await this.running;
    await this.ctx.db.deleteFrom('replicas').where('id', '=', this.ctx.replicaId).execute();
    if (this.lockClient !== undefined) {
      await this.lockClient.query('SELECT pg_advisory_unlock($1)', [SWEEPER_LOCK]);
      this.lockClient.release();
      this.lockClient = undefined;
    }
  }
}
