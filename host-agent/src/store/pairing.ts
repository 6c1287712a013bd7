import type { AgentStore } from './db.js';

/** Rows of the link tables (see migrations.ts); times are ms since the epoch. */
export interface PairingCodeRow {
  id: number;
  code: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
  burned_at: number | null;
  failed_attempts: number;
}

export interface PairedDevice {
  public_key: string;
  name: string;
  paired_at: number;
  last_seen_at: number | null;
}

/** Stores a new code and revokes every older code not yet used, in one transaction. */
export function insertPairingCode(store: AgentStore, code: string, now: number, ttlMs: number): PairingCodeRow {
  const { db } = store;
  return db
    .transaction(() => {
      db.prepare('UPDATE pairing_codes SET revoked_at = ? WHERE used_at IS NULL AND revoked_at IS NULL').run(now);
      const { lastInsertRowid } = db
        .prepare('INSERT INTO pairing_codes (code, created_at, expires_at) VALUES (?, ?, ?)')
        .run(code, now, now + ttlMs);
      return db.prepare('SELECT * FROM pairing_codes WHERE id = ?').get(lastInsertRowid) as PairingCodeRow;
    })
    .immediate();
}

/** The newest code; issuing revokes older unused ones, so the newest is the only candidate. */
export function latestPairingCode(store: AgentStore): PairingCodeRow | undefined {
  return store.db.prepare('SELECT * FROM pairing_codes ORDER BY id DESC LIMIT 1').get() as PairingCodeRow | undefined;
}

/** Counts one wrong guess against a code; at `maxFailures` the code is burned. */
export function recordFailedAttempt(store: AgentStore, id: number, now: number, maxFailures: number): PairingCodeRow {
  const { db } = store;
  return db
    .transaction(() => {
      db.prepare('UPDATE pairing_codes SET failed_attempts = failed_attempts + 1 WHERE id = ?').run(id);
      db.prepare(
        'UPDATE pairing_codes SET burned_at = ? WHERE id = ? AND burned_at IS NULL AND failed_attempts >= ?',
      ).run(now, id, maxFailures);
      return db.prepare('SELECT * FROM pairing_codes WHERE id = ?').get(id) as PairingCodeRow;
    })
    .immediate();
}

/**
 * Marks the code used and trusts the device, atomically, only if the code is still usable at
 * `now` (two devices racing with one code: exactly one wins). Returns false if it was not.
 */
export function consumeCodeAndPair(
  store: AgentStore,
  codeId: number,
  device: { public_key: string; name: string },
  now: number,
): boolean {
  const { db } = store;
  return db
    .transaction(() => {
      const used = db
        .prepare(
          `UPDATE pairing_codes SET used_at = ?
           WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND burned_at IS NULL AND expires_at > ?`,
        )
        .run(now, codeId, now);
      if (used.changes !== 1) return false;
      db.prepare(
        `INSERT INTO paired_devices (public_key, name, paired_at) VALUES (?, ?, ?)
         ON CONFLICT(public_key) DO UPDATE SET name = excluded.name, paired_at = excluded.paired_at`,
      ).run(device.public_key, device.name, now);
      return true;
    })
    .immediate();
}

export function findPairedDevice(store: AgentStore, publicKey: string): PairedDevice | undefined {
  return store.db.prepare('SELECT * FROM paired_devices WHERE public_key = ?').get(publicKey) as
    PairedDevice | undefined;
}

export function listPairedDevices(store: AgentStore): PairedDevice[] {
  return store.db.prepare('SELECT * FROM paired_devices ORDER BY paired_at').all() as PairedDevice[];
}

export function touchPairedDevice(store: AgentStore, publicKey: string, now: number): void {
  store.db.prepare('UPDATE paired_devices SET last_seen_at = ? WHERE public_key = ?').run(now, publicKey);
}

export function removePairedDevice(store: AgentStore, publicKey: string): boolean {
  return store.db.prepare('DELETE FROM paired_devices WHERE public_key = ?').run(publicKey).changes === 1;
}
