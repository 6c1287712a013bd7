import { HangarError } from '@hangar/shared';
import { chownSync, lstatSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { AgentStore } from './db.js';

/** Rows of the link tables (see migrations.ts), parsed as read; times are ms since the epoch. */
const PairingCodeRow = z.object({
  id: z.number().int(),
  code: z.string(),
  created_at: z.number().int(),
  expires_at: z.number().int(),
  used_at: z.number().int().nullable(),
  revoked_at: z.number().int().nullable(),
  burned_at: z.number().int().nullable(),
  failed_attempts: z.number().int(),
});
export type PairingCodeRow = z.infer<typeof PairingCodeRow>;

const PairedDevice = z.object({
  public_key: z.string(),
  name: z.string(),
  paired_at: z.number().int(),
  last_seen_at: z.number().int().nullable(),
});
export type PairedDevice = z.infer<typeof PairedDevice>;

const parseOptional = <S extends z.ZodType>(schema: S, row: unknown): z.output<S> | undefined =>
  row === undefined ? undefined : schema.parse(row);

/** Stores a new code and revokes every older code not yet used, in one transaction. */
export function insertPairingCode(store: AgentStore, code: string, now: number, ttlMs: number): PairingCodeRow {
  const { db } = store;
  return db
    .transaction(() => {
      db.prepare('UPDATE pairing_codes SET revoked_at = ? WHERE used_at IS NULL AND revoked_at IS NULL').run(now);
      const { lastInsertRowid } = db
        .prepare('INSERT INTO pairing_codes (code, created_at, expires_at) VALUES (?, ?, ?)')
        .run(code, now, now + ttlMs);
      return PairingCodeRow.parse(db.prepare('SELECT * FROM pairing_codes WHERE id = ?').get(lastInsertRowid));
    })
    .immediate();
}

/** The newest code; issuing revokes older unused ones, so the newest is the only candidate. */
export function latestPairingCode(store: AgentStore): PairingCodeRow | undefined {
  return parseOptional(PairingCodeRow, store.db.prepare('SELECT * FROM pairing_codes ORDER BY id DESC LIMIT 1').get());
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
      return PairingCodeRow.parse(db.prepare('SELECT * FROM pairing_codes WHERE id = ?').get(id));
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
  return spendAndPair(store, device, now, 'code', () => {
    const used = store.db
      .prepare(
        `UPDATE pairing_codes SET used_at = ?
         WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND burned_at IS NULL AND expires_at > ?`,
      )
      .run(now, codeId, now);
    return used.changes === 1;
  });
}

/**
 * Spends a one-time secret (`spend` says whether it still could) and, only then, trusts the
 * device, in one immediate transaction: of two connections racing with one secret, one wins.
 */
export function spendAndPair(
  store: AgentStore,
  device: { public_key: string; name: string },
  now: number,
  via: 'code' | 'enrollment',
  spend: () => boolean,
): boolean {
  const { db } = store;
  return db
    .transaction(() => {
      if (!spend()) return false;
      // The user carried this key here again: an unpairing before no longer stands.
      db.prepare('DELETE FROM unpaired_devices WHERE public_key = ?').run(device.public_key);
      db.prepare(
        `INSERT INTO paired_devices (public_key, name, paired_at, paired_via) VALUES (?, ?, ?, ?)
         ON CONFLICT(public_key) DO UPDATE SET name = excluded.name, paired_at = excluded.paired_at`,
      ).run(device.public_key, device.name, now, via);
      return true;
    })
    .immediate();
}

export function findPairedDevice(store: AgentStore, publicKey: string): PairedDevice | undefined {
  return parseOptional(
    PairedDevice,
    store.db.prepare('SELECT * FROM paired_devices WHERE public_key = ?').get(publicKey),
  );
}

export function listPairedDevices(store: AgentStore): PairedDevice[] {
  return store.db
    .prepare('SELECT * FROM paired_devices ORDER BY paired_at')
    .all()
    .map((row) => PairedDevice.parse(row));
}

export function touchPairedDevice(store: AgentStore, publicKey: string, now: number): void {
  store.db.prepare('UPDATE paired_devices SET last_seen_at = ? WHERE public_key = ?').run(now, publicKey);
}

export function removePairedDevice(store: AgentStore, publicKey: string): boolean {
  return store.db.prepare('DELETE FROM paired_devices WHERE public_key = ?').run(publicKey).changes === 1;
}

const WaitingRow = z.object({ public_key: z.string(), name: z.string() });

/**
 * Devices the account's kept statements endorsed that are not pinned here, revoked, or unpaired
 * already: those a revocation unpinned (their chain cut), or whose signer is not trusted yet.
 */
function waitingDevices(store: AgentStore): { public_key: string; name: string; pinned: false }[] {
  const rows = store.db
    .prepare(
      `SELECT json_extract(statement, '$.subject_device_key') AS public_key,
              json_extract(statement, '$.subject_name') AS name, MAX(seq) AS last
       FROM account_statements
       WHERE json_extract(statement, '$.kind') = 'endorse'
       GROUP BY public_key
       HAVING public_key NOT IN (SELECT public_key FROM paired_devices)
          AND public_key NOT IN (SELECT public_key FROM revoked_devices)
          AND public_key NOT IN (SELECT public_key FROM unpaired_devices)
       ORDER BY last DESC`,
    )
    .all();
  return rows.map((row) => ({ ...WaitingRow.parse(row), pinned: false as const }));
}

/**
 * `hangar-agent unpair` writes this file in the data dir; a running agent watches it and ends the
 * open links of every device no longer pinned (the command is another process than the agent).
 */
export const UNPAIRED_FILE = 'unpaired';

/**
 * Forgets one pinned device, named by its name or the start of its key (hex, 8 characters or more):
 * its next link is refused, and a running agent ends its open ones; no endorsement pins it here again,
 * only a new pairing (a code, an enrollment's first link). Several matches: nothing removed.
 */
export function unpairDevice(
  store: AgentStore,
  dataDir: string,
  which: string,
): { public_key: string; name: string; pinned: boolean } {
  const byKey = /^[0-9a-f]{8,}$/i.test(which);
  const named = (device: { public_key: string; name: string }) =>
    byKey ? device.public_key.startsWith(which.toLowerCase()) || device.name === which : device.name === which;
  const pinned = listPairedDevices(store).filter(named);
  // Not pinned now: a device endorsed here before whose chain a revocation cut (it waits for a
  // trusted device to approve it again). Its endorsements would bring it back with its approver's
  // (relay/PROTOCOL.md "A device approved again"); the host's owner can say no to it beforehand.
  const matches: { public_key: string; name: string; pinned: boolean }[] =
    pinned.length > 0
      ? pinned.map((d) => ({ public_key: d.public_key, name: d.name, pinned: true }))
      : waitingDevices(store).filter(named);
  if (matches.length === 0) {
    throw new HangarError(
      'E_NOT_FOUND',
      `no paired device is named or has a key starting "${which}", nor one waiting to be approved again; ` +
        'hangar-agent status lists the paired devices',
    );
  }
  if (matches.length > 1) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `${matches.length} paired devices match "${which}" (${matches.map((d) => `${d.name} ${d.public_key.slice(0, 12)}…`).join(', ')}); name one by the start of its key`,
    );
  }
  // A tombstone: no endorsement (kept, or read again) pins it here again, only a new pairing.
  store.db
    .transaction(() => {
      if (matches[0]!.pinned) removePairedDevice(store, matches[0]!.public_key);
      store.db
        .prepare('INSERT OR REPLACE INTO unpaired_devices (public_key, unpaired_at) VALUES (?, ?)')
        .run(matches[0]!.public_key, Date.now());
    })
    .immediate();
  const file = join(dataDir, UNPAIRED_FILE);
  writeFileSync(file, `${Date.now()}\n`, { mode: 0o600 });
  // Run as root (sudo) on an agent user's data dir, and the file new (an agent from before it, or one
  // that never ran): the agent's, as its database is, or that agent cannot open it to start.
  const owner = statSync(join(dataDir, 'agent.db'), { throwIfNoEntry: false });
  if (owner !== undefined && lstatSync(file).uid !== owner.uid) chownSync(file, owner.uid, owner.gid);
  return matches[0]!;
}
