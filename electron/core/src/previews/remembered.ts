import { HostName, PreviewPort } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';

/** A row as stored, parsed with the wire schemas: a row of another shape is an error, not a guess. */
const Row = z.object({ host: HostName, port: PreviewPort, local_port: PreviewPort });
export type RememberedPreview = z.infer<typeof Row>;

/**
 * The previews a UI opened, in the core's SQLite, so that the next UI core (npm start, hangar
 * ui, the window) serves them again at the same addresses: bookmarks and OAuth callbacks to
 * http://localhost:<port>/ keep working. A host's go with it (foreign key).
 */
export class RememberedPreviews {
  constructor(private readonly db: Database.Database) {}

  list(): RememberedPreview[] {
    return this.db
      .prepare('SELECT host, port, local_port FROM open_previews ORDER BY opened_at')
      .all()
      .map((row) => Row.parse(row));
  }

  remember(host: string, port: number, localPort: number): void {
    this.db
      .prepare(
        `INSERT INTO open_previews (host, port, local_port, opened_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (host, port) DO UPDATE SET local_port = excluded.local_port`,
      )
      .run(host, port, localPort, Date.now());
  }

  has(host: string, port: number): boolean {
    return this.db.prepare('SELECT 1 FROM open_previews WHERE host = ? AND port = ?').get(host, port) !== undefined;
  }

  forget(host: string, port: number): void {
    this.db.prepare('DELETE FROM open_previews WHERE host = ? AND port = ?').run(host, port);
  }
}
