import { closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { openWatchedFile } from '../file-watch.js';
import type { AgentStore } from '../store/db.js';
import { spendAndPair } from '../store/pairing.js';
import { agentDb } from '../store/stored-rows.js';

/**
 * The relay tables of agent.db (migrations 5 and 8): the host's one enrollment, the first links its
 * enrollment tokens promise, the devices revoked by statements, and the account's statements kept
 * (statements.ts). Times are ms since the epoch.
 */

const EnrollmentRow = z.object({
  relay_url: z.string(),
  host_id: z.string(),
  account_id: z.string(),
  name: z.string(),
  enrolled_at: z.number().int(),
  statements_seq: z.number().int(),
  state: z.string().nullable(),
  state_error: z.string().nullable(),
  state_at: z.number().int().nullable(),
  state_pid: z.number().int().nullable(),
});
export type EnrollmentRow = z.infer<typeof EnrollmentRow>;

const FirstLinkRow = z.object({
  token_id: z.string(),
  device_key: z.string(),
  e2e_secret: z.string().nullable(),
  created_at: z.number().int(),
  expires_at: z.number().int(),
  used_at: z.number().int().nullable(),
});
export type FirstLinkRow = z.infer<typeof FirstLinkRow>;

/** What the read-only helpers need: `relayStatus` passes a read-only connection of its own. */
type StoreReader = Pick<AgentStore, 'db'>;

/** How long the device that made a token has to make its first link to the host. */
export const FIRST_LINK_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export function loadEnrollment(store: StoreReader): EnrollmentRow | undefined {
  const row = store.db.prepare('SELECT * FROM relay_enrollment WHERE id = 1').get();
  return agentDb.row(store.db, 'relay_enrollment', EnrollmentRow, row);
}

export function findFirstLink(store: AgentStore, tokenId: string): FirstLinkRow | undefined {
  const row = store.db.prepare('SELECT * FROM relay_first_links WHERE token_id = ?').get(tokenId);
  return agentDb.row(store.db, 'relay_first_links', FirstLinkRow, row);
}

/**
 * Stores the enrollment and the first link its token promises, together. Enrolled again in the
 * same account, the host keeps the statements it kept and applied; in another account (or on
 * another relay) it starts from that account's first statement.
 */
export function saveEnrollment(
  store: AgentStore,
  enrollment: Pick<EnrollmentRow, 'relay_url' | 'host_id' | 'account_id' | 'name' | 'enrolled_at'>,
  firstLink: Pick<FirstLinkRow, 'token_id' | 'device_key' | 'e2e_secret' | 'expires_at'>,
): void {
  const { db } = store;
  db.transaction(() => {
    const before = loadEnrollment(store);
    const sameAccount = before?.account_id === enrollment.account_id && before.relay_url === enrollment.relay_url;
    if (!sameAccount) {
      db.prepare('DELETE FROM account_statements').run();
      db.prepare('DELETE FROM relay_pre_chain').run(); // its seqs were the other account's
    }
    db.prepare(
      `INSERT INTO relay_enrollment (id, relay_url, host_id, account_id, name, enrolled_at, statements_seq)
       VALUES (1, @relay_url, @host_id, @account_id, @name, @enrolled_at, 0)
       ON CONFLICT(id) DO UPDATE SET relay_url = excluded.relay_url, host_id = excluded.host_id,
         account_id = excluded.account_id, name = excluded.name, enrolled_at = excluded.enrolled_at,
         statements_seq = CASE WHEN @same THEN statements_seq ELSE 0 END,
         state = NULL, state_error = NULL, state_at = NULL, state_pid = NULL`,
    ).run({ ...enrollment, same: sameAccount ? 1 : 0 });
    db.prepare(
      `INSERT INTO relay_first_links (token_id, device_key, e2e_secret, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?)`,
    ).run(firstLink.token_id, firstLink.device_key, firstLink.e2e_secret, enrollment.enrolled_at, firstLink.expires_at);
  }).immediate();
}

/**
 * The file `hangar-agent enroll` touches after saving an enrollment: a serving agent watches it
 * (relay-link.ts) instead of reading the enrollment every few seconds.
 */
export function enrollmentChangedFile(dataDir: string): string {
  return join(dataDir, 'relay-enrollment-changed');
}

/**
 * Opens enrollmentChangedFile for writing, made if missing, never through a symlink planted there
 * (openWatchedFile). Throws where it cannot be opened so.
 */
export function openEnrollmentChangedFile(dataDir: string, truncate = false): number {
  return openWatchedFile(enrollmentChangedFile(dataDir), truncate ? 'truncate' : 'append');
}

/**
 * Tells a serving agent on `dataDir` that the enrollment changed. Where the file cannot be written
 * (a symlink planted there, say) a serving agent could not watch it either: it reads the enrollment
 * every few seconds instead, and this is not needed.
 */
export function noteEnrollmentChanged(dataDir: string): void {
  let fd: number;
  try {
    fd = openEnrollmentChangedFile(dataDir, true);
  } catch {
    return;
  }
  try {
    writeSync(fd, `${Date.now()}\n`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Spends a first link and pins its device, atomically, only if it is still usable at `now`
 * (two connections racing with one secret: exactly one wins). Returns false if it was not.
 */
export function consumeFirstLinkAndPair(
  store: AgentStore,
  tokenId: string,
  device: { public_key: string; name: string },
  now: number,
): boolean {
  return spendAndPair(store, device, now, 'enrollment', () => {
    if (isRevoked(store, device.public_key)) return false;
    const spent = store.db
      .prepare(
        `UPDATE relay_first_links SET used_at = ?, e2e_secret = NULL
         WHERE token_id = ? AND device_key = ? AND e2e_secret IS NOT NULL AND used_at IS NULL AND expires_at > ?`,
      )
      .run(now, tokenId, device.public_key, now);
    return spent.changes === 1;
  });
}

/** Keys of devices whose first link is still to come. */
export function pendingFirstLinkKeys(store: StoreReader, now: number): Set<string> {
  const rows = store.db
    .prepare('SELECT device_key FROM relay_first_links WHERE e2e_secret IS NOT NULL AND expires_at > ?')
    .all(now);
  return new Set(
    agentDb
      .rows(store.db, 'relay_first_links', z.object({ device_key: z.string() }), rows)
      .map((row) => row.device_key),
  );
}

/** Forgets the secrets of first links that can no longer happen; used rows stay (replays). */
export function voidExpiredFirstLinks(store: AgentStore, now: number): void {
  store.db
    .prepare('UPDATE relay_first_links SET e2e_secret = NULL WHERE e2e_secret IS NOT NULL AND expires_at <= ?')
    .run(now);
}

export function countPendingFirstLinks(store: StoreReader, now: number): number {
  return pendingFirstLinkKeys(store, now).size;
}

export function isRevoked(store: AgentStore, publicKey: string): boolean {
  return store.db.prepare('SELECT 1 FROM revoked_devices WHERE public_key = ?').get(publicKey) !== undefined;
}

/** What serve last saw of its relay link (null: no serve holds it now), for `relayStatus`. */
export function recordRelayState(
  store: AgentStore,
  hostId: string,
  state: { state: string | null; error: string | null; at: number | null; pid: number | null },
): void {
  store.db
    .prepare(
      'UPDATE relay_enrollment SET state = ?, state_error = ?, state_at = ?, state_pid = ? WHERE id = 1 AND host_id = ?',
    )
    .run(state.state, state.error, state.at, state.pid, hostId);
}
