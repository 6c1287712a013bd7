import { BackupExclude, BackupRun, BackupSettings } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { agentDb } from '../store/stored-rows.js';

const SettingsRow = z.object({
  id: z.literal(1),
  settings: z.string(),
  updated_at: z.number().int(),
  excludes: z.string(),
});
const Excludes = z.array(BackupExclude);

const RunRow = z.object({
  id: z.string(),
  kind: BackupRun.shape.kind,
  trigger: BackupRun.shape.trigger,
  state: BackupRun.shape.state,
  started_at: z.number().int(),
  finished_at: z.number().int().nullable(),
  snapshot: z.string().nullable(),
  files: z.number().int().nullable(),
  bytes: z.number().nullable(),
  added_bytes: z.number().nullable(),
  message: z.string().nullable(),
  restore_to: z.string().nullable(),
  restore_staging: z.string().nullable(),
});
type RunRow = z.infer<typeof RunRow>;

/** A run's message carries at most this. */
const MAX_MESSAGE_CHARS = 4096;

export type RunEnd = Pick<BackupRun, 'state'> &
  Partial<Pick<BackupRun, 'snapshot' | 'files' | 'bytes' | 'added_bytes' | 'message'>>;

/** What this host backs up (agent.db `backup_settings`) and each run (`backup_runs`), across restarts. */
export class BackupStore {
  constructor(private readonly db: Database.Database) {}

  settings(): { settings: BackupSettings; updated_at: number } | undefined {
    const row = agentDb.row(
      this.db,
      'backup_settings',
      SettingsRow,
      this.db.prepare('SELECT * FROM backup_settings WHERE id = 1').get(),
    );
    if (!row) return undefined;
    const settings = agentDb.json(this.db, 'backup_settings', BackupSettings, row.settings);
    const excludes = agentDb.json(this.db, 'backup_settings', Excludes, row.excludes);
    return { settings: excludes.length > 0 ? { ...settings, excludes } : settings, updated_at: row.updated_at };
  }

  /**
   * The excludes (migration 13) are kept in a column of their own: an agent from before them reads
   * the settings JSON with a strict schema, and still can after a downgrade (without the excludes).
   */
  setSettings(settings: BackupSettings, now: number): void {
    const { excludes, ...rest } = settings;
    this.db
      .prepare(
        `INSERT INTO backup_settings (id, settings, updated_at, excludes) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at,
         excludes = excluded.excludes`,
      )
      .run(JSON.stringify(rest), now, JSON.stringify(excludes ?? []));
  }

  insertRun(
    run: Pick<BackupRun, 'id' | 'kind' | 'trigger' | 'started_at' | 'snapshot' | 'to'> & { staging: string | null },
  ): BackupRun {
    this.db
      .prepare(
        `INSERT INTO backup_runs (id, kind, trigger, state, started_at, snapshot, restore_to, restore_staging)
         VALUES (?, ?, ?, 'running', ?, ?, ?, ?)`,
      )
      .run(run.id, run.kind, run.trigger, run.started_at, run.snapshot, run.to, run.staging);
    return this.get(run.id)!;
  }

  endRun(id: string, end: RunEnd, now: number): BackupRun {
    this.db
      .prepare(
        `UPDATE backup_runs SET state = ?, finished_at = ?, snapshot = COALESCE(?, snapshot), files = ?, bytes = ?,
         added_bytes = ?, message = ? WHERE id = ?`,
      )
      .run(
        end.state,
        now,
        end.snapshot ?? null,
        end.files ?? null,
        end.bytes ?? null,
        end.added_bytes ?? null,
        end.message?.slice(0, MAX_MESSAGE_CHARS) ?? null,
        id,
      );
    return this.get(id)!;
  }

  get(id: string): BackupRun | undefined {
    const row = agentDb.row(
      this.db,
      'backup_runs',
      RunRow,
      this.db.prepare('SELECT * FROM backup_runs WHERE id = ?').get(id),
    );
    return row && toRun(row);
  }

  /** The newest runs, in the order they began here (rowid), whatever the clock said then. */
  recent(limit: number, where = '1 = 1'): BackupRun[] {
    const rows = this.db.prepare(`SELECT * FROM backup_runs WHERE ${where} ORDER BY rowid DESC LIMIT ?`).all(limit);
    return agentDb.rows(this.db, 'backup_runs', RunRow, rows).map(toRun);
  }

  lastBackup(onlyOk: boolean): BackupRun | undefined {
    return this.recent(1, `kind = 'backup' AND state ${onlyOk ? "= 'ok'" : "!= 'running'"}`)[0];
  }

  /** The staging directories (and targets) of restores a previous agent left `running` (it was killed during them). */
  interruptedStaging(): { staging: string; target: string | null }[] {
    const rows = this.db
      .prepare(`SELECT * FROM backup_runs WHERE state = 'running' AND kind = 'restore' AND restore_staging IS NOT NULL`)
      .all();
    return agentDb
      .rows(this.db, 'backup_runs', RunRow, rows)
      .map((row) => ({ staging: row.restore_staging!, target: row.restore_to }));
  }

  /** Runs a previous agent left `running`: it stopped (or was killed) during them. */
  endInterrupted(now: number): void {
    this.db
      .prepare(
        `UPDATE backup_runs SET state = 'error', finished_at = ?,
         message = CASE kind
           WHEN 'restore' THEN 'the agent stopped during this restore; nothing was restored: run it again (hangar backup restore)'
           ELSE 'the agent stopped during this backup; run it again (hangar backup now)' END
         WHERE state = 'running'`,
      )
      .run(now);
  }
}

function toRun(row: RunRow): BackupRun {
  const { restore_to, restore_staging: _staging, ...rest } = row;
  return { ...rest, to: restore_to };
}
