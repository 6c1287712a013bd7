import { StoredStatement, verifyStatement } from '@hangar/shared';
import { z } from 'zod';
import type { AgentStore } from '../store/db.js';
import { findPairedDevice } from '../store/pairing.js';
import { agentDb } from '../store/stored-rows.js';
import { isRevoked, loadEnrollment } from './relay-store.js';

/**
 * Endorsements and revocations, verified here: the relay only carries them, and a relay that
 * makes one up must change nothing. Every statement about this host's account whose signature
 * verifies is kept (`account_statements`), whoever signed it; it counts once its signer is trusted
 * here: pinned by a code, at an enrollment's first link, or endorsed by a trusted device. The
 * trusted set is the closure from those roots: each new pin (an endorsement applied, a first link,
 * a code pairing) looks again at what is kept, so a device endorsed by a computer this host learns
 * to trust only later gets in then. Revocation wins: a revoked key stays revoked, whatever
 * endorsement comes before or after, and what it signs counts no more. A statement signed by a key
 * no trusted device vouched for (one the relay made) stays kept and changes nothing.
 */

export type StatementResult = 'pinned' | 'already pinned' | 'revoked' | 'kept' | 'ignored';

export interface StatementOutcome {
  seq: number;
  kind: StoredStatement['kind'];
  subject: string;
  subject_name: string;
  signer: string;
  result: StatementResult;
  /** Why it was ignored, or kept without effect. */
  reason?: string;
}

export interface AppliedStatements {
  outcomes: StatementOutcome[];
  /** Keys unpinned by a revocation now (the revoked and those only it vouched for): their open links are to be closed. */
  revoked: string[];
  /** Devices unpinned because no trusted device vouches for them any more (their endorser was revoked). */
  unvouched: { key: string; name: string }[];
}

/**
 * Keeps the statements after the stored highest seq that verify, applies what their signers'
 * trust allows, in one transaction, and stores the new highest seq. One about another account or
 * with a bad signature is ignored (and counts as seen); one whose signer is not trusted yet is kept.
 */
/**
 * How many statements this host keeps without effect (signed by keys it does not trust yet). An
 * account's own devices make a few; a relay signing with keys of its own could make any number,
 * so past this a new one from an untrusted key is ignored (logged). That gives a relay nothing it
 * lacks already: it can withhold statements anyway.
 */
export const MAX_KEPT_UNTRUSTED = 5000;

const CountRow = z.object({ n: z.number().int() });

export function applyStatements(
  store: AgentStore,
  statements: readonly StoredStatement[],
  now: number,
  maxKeptUntrusted = MAX_KEPT_UNTRUSTED,
): AppliedStatements {
  const { db } = store;
  return db
    .transaction(() => {
      const enrollment = loadEnrollment(store);
      const applied: AppliedStatements = { outcomes: [], revoked: [], unvouched: [] };
      if (enrollment === undefined) return applied;
      let seq = enrollment.statements_seq;
      const fresh: StoredStatement[] = [];
      let waiting = CountRow.parse(
        db.prepare('SELECT COUNT(*) AS n FROM account_statements WHERE applied_at IS NULL').get(),
      ).n;
      for (const statement of [...statements].sort((a, b) => a.seq - b.seq)) {
        if (statement.seq <= seq) continue; // sent again after a reconnect
        seq = statement.seq;
        const ignored = (reason: string) =>
          applied.outcomes.push({ ...outcomeBase(statement), result: 'ignored', reason });
        if (statement.account_id !== enrollment.account_id) {
          ignored('it is about another account than the one this host is in');
        } else if (!verifyStatement(statement)) {
          ignored('its signature does not verify with the signer key');
        } else if (
          db.prepare('SELECT 1 FROM account_statements WHERE signature = ?').get(statement.signature) !== undefined
        ) {
          // A relay replaying one (the honest one stores a statement once): kept once, applied once.
          ignored('it is a copy of a statement this host already keeps, under another seq');
        } else if (waiting >= maxKeptUntrusted && !knownHere(store, statement.signer_device_key)) {
          ignored(
            `this host already keeps ${maxKeptUntrusted} statements signed by keys it does not trust: a relay may be flooding it`,
          );
        } else {
          waiting++;
          db.prepare(
            'INSERT OR IGNORE INTO account_statements (seq, signer_key, signature, statement) VALUES (?, ?, ?, ?)',
          ).run(statement.seq, statement.signer_device_key, statement.signature, JSON.stringify(statement));
          fresh.push(statement);
        }
      }
      db.prepare('UPDATE relay_enrollment SET statements_seq = ? WHERE id = 1').run(seq);
      settle(store, applied, now);
      const done = new Set(applied.outcomes.map((o) => o.seq));
      for (const statement of fresh) {
        if (done.has(statement.seq)) continue;
        applied.outcomes.push({
          ...outcomeBase(statement),
          result: 'kept',
          reason:
            'it is signed by a device this host does not trust (yet): it counts once a trusted one vouches for it',
        });
      }
      applied.outcomes.sort((a, b) => a.seq - b.seq);
      return applied;
    })
    .immediate();
}

/**
 * A device was pinned (a first link, a code pairing) or serve starts: what is kept and signed by
 * keys trusted now applies, and so on through what those endorse.
 */
export function reevaluateStatements(store: AgentStore, now: number): AppliedStatements {
  return store.db
    .transaction(() => {
      const applied: AppliedStatements = { outcomes: [], revoked: [], unvouched: [] };
      if (loadEnrollment(store) === undefined) return applied;
      settle(store, applied, now);
      return applied;
    })
    .immediate();
}

const KeptStatementRow = z.object({ seq: z.number().int(), statement: z.string() });

/** Pinned or revoked here: what it signs is applied (or ignored) at once, never left waiting. */
function knownHere(store: AgentStore, key: string): boolean {
  return findPairedDevice(store, key) !== undefined || isRevoked(store, key);
}

/**
 * Applies kept statements whose signer is trusted, in seq order, again until nothing changes (an
 * endorsement applied may make the signer of an earlier one trusted). Each is applied once while
 * its signer stays trusted; the endorsements of a device unpinned because no chain reaches it any
 * more (dropUnvouched) wait again, and apply again once it is trusted again. A device the user
 * unpaired on this host stays out by its tombstone (wasUnpaired), whatever endorses it.
 */
function settle(store: AgentStore, applied: AppliedStatements, now: number): void {
  const { db } = store;
  for (;;) {
    const rows = db
      .prepare(
        // Only those whose signer is pinned or revoked can change anything: what keys nobody vouched
        // for signed (a relay's, up to MAX_KEPT_UNTRUSTED) is not read again on every pass.
        `SELECT seq, statement FROM account_statements
         WHERE applied_at IS NULL
           AND (signer_key IN (SELECT public_key FROM paired_devices)
             OR signer_key IN (SELECT public_key FROM revoked_devices))
         ORDER BY seq`,
      )
      .all();
    let progressed = false;
    for (const row of agentDb.rows(db, 'account_statements', KeptStatementRow, rows)) {
      // Written by this code from a parsed statement: one that does not parse is not what it wrote.
      const statement = agentDb.json(db, 'account_statements', StoredStatement, row.statement);
      const outcome = applyOne(store, statement, now);
      if (outcome === undefined) continue;
      db.prepare('UPDATE account_statements SET applied_at = ? WHERE seq = ?').run(now, statement.seq);
      applied.outcomes.push(outcome);
      if (outcome.result === 'revoked') applied.revoked.push(outcome.subject);
      progressed = true;
    }
    if (!progressed) break;
  }
  if (applied.revoked.length > 0) dropUnvouched(store, applied);
}

const EndorsedRow = z.object({ public_key: z.string(), name: z.string() });
const RootRow = z.object({ public_key: z.string() });

/**
 * A revocation also takes back what the revoked key vouched for: a device pinned here only by
 * endorsement stays only while the chain from a device this host pinned itself (a code, a first
 * link) through endorsements by trusted, unrevoked devices still reaches it. A stolen laptop
 * revoked: what it endorsed the minute before is unpinned too, unless another trusted device
 * vouched for it as well. Unpinned, not revoked: a trusted device that endorses it again lets it in,
 * and with it what it had endorsed (relay/PROTOCOL.md "A device approved again").
 */
function dropUnvouched(store: AgentStore, applied: AppliedStatements): void {
  const { db } = store;
  const trusted = new Set(
    agentDb
      .rows(
        db,
        'paired_devices',
        RootRow,
        db.prepare("SELECT public_key FROM paired_devices WHERE paired_via != 'endorsement'").all(),
      )
      .map((row) => row.public_key),
  );
  const excluded = new Set(
    agentDb
      .rows(db, 'revoked_devices', RootRow, db.prepare('SELECT public_key FROM revoked_devices').all())
      .map((row) => row.public_key),
  );
  for (const row of agentDb.rows(
    db,
    'unpaired_devices',
    RootRow,
    db.prepare('SELECT public_key FROM unpaired_devices').all(),
  )) {
    excluded.add(row.public_key); // unpaired by the host's owner: vouches for nothing here either
  }
  const endorsedBy = new Map<string, string[]>(); // signer -> subjects
  for (const row of agentDb.rows(
    db,
    'account_statements',
    KeptStatementRow,
    db.prepare('SELECT seq, statement FROM account_statements').all(),
  )) {
    const statement = agentDb.json(db, 'account_statements', StoredStatement, row.statement);
    if (statement.kind !== 'endorse' || excluded.has(statement.signer_device_key)) continue;
    const subjects = endorsedBy.get(statement.signer_device_key) ?? [];
    subjects.push(statement.subject_device_key);
    endorsedBy.set(statement.signer_device_key, subjects);
  }
  // Breadth first from the roots: each key is visited once, so a cycle of endorsements ends.
  const queue = [...trusted];
  for (let next = 0; next < queue.length; next++) {
    for (const subject of endorsedBy.get(queue[next]!) ?? []) {
      if (trusted.has(subject) || excluded.has(subject)) continue;
      trusted.add(subject);
      queue.push(subject);
    }
  }
  const endorsed = agentDb.rows(
    db,
    'paired_devices',
    EndorsedRow,
    db.prepare("SELECT public_key, name FROM paired_devices WHERE paired_via = 'endorsement'").all(),
  );
  for (const device of endorsed) {
    if (trusted.has(device.public_key)) continue;
    db.prepare('DELETE FROM paired_devices WHERE public_key = ?').run(device.public_key);
    // Unvouched, not revoked: its key still speaks for it, so what it endorsed counts again once a
    // trusted device vouches for it again (settle applies these then, as any kept statement).
    db.prepare(
      `UPDATE account_statements SET applied_at = NULL
       WHERE signer_key = ? AND json_extract(statement, '$.kind') = 'endorse'`,
    ).run(device.public_key);
    applied.revoked.push(device.public_key);
    applied.unvouched.push({ key: device.public_key, name: device.name });
  }
}

const PreChainRow = z.object({ statements_seq: z.number().int() });

/**
 * Whether the host's owner unpaired the subject here: a tombstone, or (a host from before migration
 * 10, reading the account again) an endorsement it had applied then, of a device not pinned then.
 */
function wasUnpaired(store: AgentStore, statement: StoredStatement): boolean {
  const { db } = store;
  const subject = statement.subject_device_key;
  if (db.prepare('SELECT 1 FROM unpaired_devices WHERE public_key = ?').get(subject) !== undefined) return true;
  const before = agentDb.row(
    db,
    'relay_pre_chain',
    PreChainRow,
    db.prepare('SELECT statements_seq FROM relay_pre_chain WHERE id = 1').get(),
  );
  if (before === undefined || statement.seq > before.statements_seq) return false;
  const pinnedThen = (key: string) =>
    db.prepare('SELECT 1 FROM relay_pre_chain_pins WHERE public_key = ?').get(key) !== undefined;
  if (!pinnedThen(statement.signer_device_key) || pinnedThen(subject)) return false;
  db.prepare('INSERT OR IGNORE INTO unpaired_devices (public_key, unpaired_at) VALUES (?, ?)').run(subject, Date.now());
  return true;
}

function outcomeBase(statement: StoredStatement): Omit<StatementOutcome, 'result'> {
  return {
    seq: statement.seq,
    kind: statement.kind,
    subject: statement.subject_device_key,
    subject_name: statement.subject_name,
    signer: statement.signer_device_key,
  };
}

/** What a kept statement does now; undefined while its signer is not trusted here (it stays kept). */
function applyOne(store: AgentStore, statement: StoredStatement, now: number): StatementOutcome | undefined {
  const { db } = store;
  const base = outcomeBase(statement);
  const ignored = (reason: string): StatementOutcome => ({ ...base, result: 'ignored', reason });
  if (isRevoked(store, statement.signer_device_key)) {
    return ignored('it is signed by a revoked device, and a revoked key signs nothing that counts');
  }
  if (findPairedDevice(store, statement.signer_device_key) === undefined) return undefined;
  const subject = statement.subject_device_key;
  if (statement.kind === 'endorse') {
    if (isRevoked(store, subject)) return ignored('the device was revoked, and a revoked key stays revoked');
    if (findPairedDevice(store, subject) !== undefined) return { ...base, result: 'already pinned' };
    if (wasUnpaired(store, statement)) {
      return ignored('the host owner unpaired this device here (hangar-agent unpair): only a new pairing lets it in');
    }
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
  return { ...base, result: 'revoked' };
}
