import { PreviewLabel, PreviewPort } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';

export interface PreviewRecord {
  port: number;
  label: string | null;
  createdAt: number;
  device: string;
}

/** A row as stored, parsed with the wire schemas: a row of another shape is an error, not a guess. */
const PreviewRow = z.object({
  port: PreviewPort,
  label: PreviewLabel.nullable(),
  created_at: z.number().int(),
  device: z.string(),
});

/** The registered previews, in the agent's SQLite: they survive agent restarts. */
export class PreviewStore {
  constructor(private readonly db: Database.Database) {}

  /**
   * The listing's read, prepared once: the watch lists on every port that opens or closes on the
   * host (every 2 s on a busy machine), and preparing it each time was ~5% of an idle agent's CPU
   * with a window open (a CPU profile, 20 s).
   */
  private listRead: Database.Statement<[]> | undefined;

  list(): PreviewRecord[] {
    this.listRead ??= this.db.prepare<[]>('SELECT port, label, created_at, device FROM previews ORDER BY port');
    return this.listRead.all().map((row) => toRecord(PreviewRow.parse(row)));
  }

  get(port: number): PreviewRecord | undefined {
    const row = this.db.prepare('SELECT port, label, created_at, device FROM previews WHERE port = ?').get(port);
    return row === undefined ? undefined : toRecord(PreviewRow.parse(row));
  }

  /** Adds the port, or gives an existing one the new label (adding twice is not an error). */
  upsert(port: number, label: string | null, device: string): PreviewRecord {
    this.db
      .prepare(
        `INSERT INTO previews (port, label, created_at, device) VALUES (?, ?, ?, ?)
         ON CONFLICT(port) DO UPDATE SET label = COALESCE(excluded.label, previews.label)`,
      )
      .run(port, label, Date.now(), device);
    return this.get(port)!;
  }

  /** False when the port was not registered. */
  remove(port: number): boolean {
    return this.db.prepare('DELETE FROM previews WHERE port = ?').run(port).changes > 0;
  }
}

function toRecord(row: z.infer<typeof PreviewRow>): PreviewRecord {
  return { port: row.port, label: row.label, createdAt: row.created_at, device: row.device };
}
