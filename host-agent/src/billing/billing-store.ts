import { Entitlement, jsonOrUndefined, UsageRecord } from '@hangar/shared';
import { z } from 'zod';
import type { AgentStore } from '../store/db.js';
import { agentDb } from '../store/stored-rows.js';

/**
 * The billing tables of agent.db (migration 6): the relay's entitlement key, the latest
 * entitlement it signed for this host, the metered attempts, and the signed usage records kept
 * until the relay acknowledges them. What is read back is parsed with the wire schemas.
 */

type StoreReader = Pick<AgentStore, 'db'>;

const MeteredAttemptRow = z.object({
  attempt_id: z.string(),
  job_id: z.string(),
  host_id: z.string(),
  started_at: z.number().int(),
  minute_ms: z.number().int(),
  minutes: z.number().int(),
  ended_at: z.number().int().nullable(),
});
export type MeteredAttemptRow = z.infer<typeof MeteredAttemptRow>;

export function entitlementKeyOf(store: StoreReader): string | null {
  const row = store.db.prepare('SELECT entitlement_key FROM relay_enrollment WHERE id = 1').get();
  return (
    agentDb.row(store.db, 'relay_enrollment', z.object({ entitlement_key: z.string().nullable() }), row)
      ?.entitlement_key ?? null
  );
}

/** Keeps the relay's entitlement key for the current enrollment (from hosts.enroll, or a first welcome). */
export function saveEntitlementKey(store: AgentStore, hostId: string, key: string): void {
  store.db.prepare('UPDATE relay_enrollment SET entitlement_key = ? WHERE id = 1 AND host_id = ?').run(key, hostId);
}

export function loadEntitlement(store: StoreReader, hostId: string): Entitlement | undefined {
  const row = store.db.prepare('SELECT entitlement FROM relay_entitlement WHERE id = 1 AND host_id = ?').get(hostId);
  const stored = agentDb.row(store.db, 'relay_entitlement', z.object({ entitlement: z.string() }), row);
  if (stored === undefined) return undefined;
  // A copy of what the relay signed: one that no longer parses (an older format) is as none, and
  // the relay's next push replaces it.
  const parsed = Entitlement.safeParse(jsonOrUndefined(stored.entitlement));
  return parsed.success ? parsed.data : undefined;
}

/** Keeps `entitlement` unless the one held was issued later (two sockets' pushes can cross). */
export function saveEntitlement(store: AgentStore, entitlement: Entitlement, now: number): boolean {
  const result = store.db
    .prepare(
      `INSERT INTO relay_entitlement (id, host_id, entitlement, received_at) VALUES (1, @host_id, @json, @now)
       ON CONFLICT(id) DO UPDATE SET host_id = excluded.host_id, entitlement = excluded.entitlement,
         received_at = excluded.received_at
       WHERE relay_entitlement.host_id <> excluded.host_id
          OR json_extract(relay_entitlement.entitlement, '$.issued_at') <= @issued_at`,
    )
    .run({ host_id: entitlement.host_id, json: JSON.stringify(entitlement), now, issued_at: entitlement.issued_at });
  return result.changes === 1;
}

export function insertMeteredAttempt(store: AgentStore, row: Omit<MeteredAttemptRow, 'minutes' | 'ended_at'>): void {
  store.db
    .prepare(
      `INSERT OR IGNORE INTO metered_attempts (attempt_id, job_id, host_id, started_at, minute_ms)
       VALUES (@attempt_id, @job_id, @host_id, @started_at, @minute_ms)`,
    )
    .run(row);
}

export function meteredAttempt(store: StoreReader, attemptId: string): MeteredAttemptRow | undefined {
  const row = store.db.prepare('SELECT * FROM metered_attempts WHERE attempt_id = ?').get(attemptId);
  return agentDb.row(store.db, 'metered_attempts', MeteredAttemptRow, row);
}

export function openMeteredAttempts(store: StoreReader): MeteredAttemptRow[] {
  const rows = store.db.prepare('SELECT * FROM metered_attempts WHERE ended_at IS NULL').all();
  return agentDb.rows(store.db, 'metered_attempts', MeteredAttemptRow, rows);
}

/**
 * Records minutes [from, to) of an attempt, each signed by `sign`, with the attempt's count,
 * in one transaction: a crash keeps both or neither, so no minute is recorded twice or skipped.
 */
export function recordMinutes(
  store: AgentStore,
  attempt: MeteredAttemptRow,
  to: number,
  sign: (minuteIndex: number) => { key: string; record: UsageRecord },
  now: number,
  endedAt?: number,
): number {
  const { db } = store;
  return db
    .transaction(() => {
      const current = meteredAttempt(store, attempt.attempt_id);
      if (current === undefined) return 0;
      const insert = db.prepare(
        'INSERT OR IGNORE INTO usage_outbox (key, host_id, record, created_at) VALUES (?, ?, ?, ?)',
      );
      let added = 0;
      for (let minute = current.minutes; minute < to; minute += 1) {
        const { key, record } = sign(minute);
        added += insert.run(key, current.host_id, JSON.stringify(record), now).changes;
      }
      db.prepare(
        'UPDATE metered_attempts SET minutes = MAX(minutes, ?), ended_at = COALESCE(ended_at, ?) WHERE attempt_id = ?',
      ).run(to, endedAt ?? null, attempt.attempt_id);
      return added;
    })
    .immediate();
}

export function endMeteredAttempt(store: AgentStore, attemptId: string, endedAt: number): void {
  store.db
    .prepare('UPDATE metered_attempts SET ended_at = ? WHERE attempt_id = ? AND ended_at IS NULL')
    .run(endedAt, attemptId);
}

/** Records still to send for `hostId`, oldest first, skipping the keys in flight. */
export function pendingUsage(store: StoreReader, hostId: string, limit: number, skip: ReadonlySet<string>) {
  const rows = store.db
    .prepare('SELECT key, record FROM usage_outbox WHERE host_id = ? ORDER BY created_at, key LIMIT ?')
    .all(hostId, limit + skip.size);
  const records: { key: string; record: UsageRecord }[] = [];
  for (const row of agentDb.rows(store.db, 'usage_outbox', z.object({ key: z.string(), record: z.string() }), rows)) {
    if (skip.has(row.key)) continue;
    records.push({ key: row.key, record: agentDb.json(store.db, 'usage_outbox', UsageRecord, row.record) });
    if (records.length >= limit) break;
  }
  return records;
}

export function pendingUsageCount(store: StoreReader, hostId?: string): number {
  const row =
    hostId === undefined
      ? store.db.prepare('SELECT COUNT(*) AS n FROM usage_outbox').get()
      : store.db.prepare('SELECT COUNT(*) AS n FROM usage_outbox WHERE host_id = ?').get(hostId);
  return agentDb.row(store.db, 'usage_outbox', z.object({ n: z.number().int() }), row)!.n;
}

/** The relay holds these (acked) or will never take them (refused): the agent's copies go. */
export function forgetUsage(store: AgentStore, keys: readonly string[]): number {
  const remove = store.db.prepare('DELETE FROM usage_outbox WHERE key = ?');
  return store.db.transaction(() => keys.reduce((n, key) => n + remove.run(key).changes, 0))();
}
