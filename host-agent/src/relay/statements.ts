import { StoredStatement, verifyStatement } from '@hangar/shared';
import { z } from 'zod';
import type { AgentStore } from '../store/db.js';
import { findPairedDevice } from '../store/pairing.js';
import { agentDb } from '../store/stored-rows.js';
import { isRevoked, loadEnrollment, pendingFirstLinkKeys } from './relay-store.js';

/**
 * Endorsements and revocations, verified here: the relay only carries them, and a relay that
 * makes one up must change nothing. A statement counts only if it is about this host's account
 * and signed by a device this host has pinned (paired with a code, at an enrollment's first
 * link, or endorsed by such a device). One signed by a device whose first link is still to come
 * is held until that link pins it, since the user carried that device's key here in the token.
 * Revocation wins: a revoked key stays revoked, whatever endorsement comes later.
 */

export type StatementResult = 'pinned' | 'already pinned' | 'revoked' | 'held' | 'ignored';

export interface StatementOutcome {
  seq: number;
  kind: StoredStatement['kind'];
  subject: string;
  subject_name: string;
  signer: string;
  result: StatementResult;
  /** Why it was ignored. */
  reason?: string;
}

export interface AppliedStatements {
  outcomes: StatementOutcome[];
  /** Keys unpinned by a revocation now: their open links are to be closed. */
  revoked: string[];
}

/**
 * Applies the statements after the stored highest seq, in seq order, in one transaction, and
 * stores the new highest seq (an ignored statement counts as seen: it is never applied later).
 */
export function applyStatements(
  store: AgentStore,
  statements: readonly StoredStatement[],
  now: number,
): AppliedStatements {
  const { db } = store;
  return db
    .transaction(() => {
      const enrollment = loadEnrollment(store);
      const applied: AppliedStatements = { outcomes: [], revoked: [] };
      if (enrollment === undefined) return applied;
      let seq = enrollment.statements_seq;
      const pending = pendingFirstLinkKeys(store, now);
      for (const statement of [...statements].sort((a, b) => a.seq - b.seq)) {
        if (statement.seq <= seq) continue; // sent again after a reconnect
        seq = statement.seq;
        const outcome = applyOne(store, enrollment.account_id, statement, pending, now);
        if (outcome.result === 'held') {
          db.prepare('INSERT OR REPLACE INTO held_statements (seq, signer_key, statement) VALUES (?, ?, ?)').run(
            statement.seq,
            statement.signer_device_key,
            JSON.stringify(statement),
          );
        }
        record(applied, outcome);
      }
      db.prepare('UPDATE relay_enrollment SET statements_seq = ? WHERE id = 1').run(seq);
      return applied;
    })
    .immediate();
}

const HeldStatementRow = z.object({ seq: z.number().int(), statement: z.string() });

/** `deviceKey` was just pinned at its first link: applies what it signed meanwhile, in seq order. */
export function releaseHeldStatements(store: AgentStore, deviceKey: string, now: number): AppliedStatements {
  const { db } = store;
  return db
    .transaction(() => {
      const applied: AppliedStatements = { outcomes: [], revoked: [] };
      const enrollment = loadEnrollment(store);
      const rows = db
        .prepare('SELECT seq, statement FROM held_statements WHERE signer_key = ? ORDER BY seq')
        .all(deviceKey);
      db.prepare('DELETE FROM held_statements WHERE signer_key = ?').run(deviceKey);
      if (enrollment === undefined) return applied;
      for (const row of agentDb.rows(db, 'held_statements', HeldStatementRow, rows)) {
        // Written by this code from a parsed statement: one that does not parse is not what it wrote.
        const statement = agentDb.json(db, 'held_statements', StoredStatement, row.statement);
        // Nothing is held a second time: the signer is pinned now, or was revoked since.
        const outcome = applyOne(store, enrollment.account_id, statement, new Set(), now);
        record(applied, outcome);
      }
      return applied;
    })
    .immediate();
}

/** Signers of held statements who are pinned by now (a first link made while serve was not listening to the relay). */
export function pinnedHeldSigners(store: AgentStore): string[] {
  const rows = store.db.prepare('SELECT DISTINCT signer_key FROM held_statements').all();
  return agentDb
    .rows(store.db, 'held_statements', z.object({ signer_key: z.string() }), rows)
    .map((row) => row.signer_key)
    .filter((key) => findPairedDevice(store, key) !== undefined);
}

function record(applied: AppliedStatements, outcome: StatementOutcome): void {
  applied.outcomes.push(outcome);
  if (outcome.result === 'revoked') applied.revoked.push(outcome.subject);
}

function applyOne(
  store: AgentStore,
  accountId: string,
  statement: StoredStatement,
  pending: Set<string>,
  now: number,
): StatementOutcome {
  const { db } = store;
  const base = {
    seq: statement.seq,
    kind: statement.kind,
    subject: statement.subject_device_key,
    subject_name: statement.subject_name,
    signer: statement.signer_device_key,
  };
  const ignored = (reason: string): StatementOutcome => ({ ...base, result: 'ignored', reason });
  if (statement.account_id !== accountId) return ignored('it is about another account than the one this host is in');
  if (!verifyStatement(statement)) return ignored('its signature does not verify with the signer key');
  if (findPairedDevice(store, statement.signer_device_key) === undefined) {
    if (pending.has(statement.signer_device_key)) return { ...base, result: 'held' };
    return ignored('it is signed by a device this host has not pinned');
  }
  const subject = statement.subject_device_key;
  if (statement.kind === 'endorse') {
    if (isRevoked(store, subject)) return ignored('the device was revoked, and a revoked key stays revoked');
    if (findPairedDevice(store, subject) !== undefined) return { ...base, result: 'already pinned' };
    db.prepare(
      `INSERT INTO paired_devices (public_key, name, paired_at, paired_via, endorsed_by)
       VALUES (?, ?, ?, 'endorsement', ?)`,
    ).run(subject, statement.subject_name, now, statement.signer_device_key);
    return { ...base, result: 'pinned' };
  }
  db.prepare('DELETE FROM paired_devices WHERE public_key = ?').run(subject);
  db.prepare('INSERT OR IGNORE INTO revoked_devices (public_key, revoked_at, revoked_by, seq) VALUES (?, ?, ?, ?)').run(
    subject,
    now,
    statement.signer_device_key,
    statement.seq,
  );
  // A revoked device gets in neither by a first link it was promised nor by what it signed.
  db.prepare('UPDATE relay_first_links SET e2e_secret = NULL WHERE device_key = ? AND used_at IS NULL').run(subject);
  db.prepare('DELETE FROM held_statements WHERE signer_key = ?').run(subject);
  pending.delete(subject);
  return { ...base, result: 'revoked' };
}
