import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

type Db = Database.Database;

/**
 * Numbered migrations, run in order at open. Append only: a released migration is never edited.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE hosts (
     name TEXT PRIMARY KEY,
     address TEXT NOT NULL,
     agent_key TEXT NOT NULL,
     cert_fingerprint TEXT NOT NULL,
     embedded INTEGER NOT NULL DEFAULT 0,
     added_at INTEGER NOT NULL
   ) STRICT;`,
  // Previews a UI opened: served again, on the same local port when free, when a UI core starts.
  `CREATE TABLE open_previews (
     host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE ON UPDATE CASCADE,
     port INTEGER NOT NULL,
     local_port INTEGER NOT NULL,
     opened_at INTEGER NOT NULL,
     PRIMARY KEY (host, port)
   ) STRICT;`,
];

export function openCoreDb(home: string): Db {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const file = join(home, 'hangar.db');
  const db = new Database(file);
  chmodSync(file, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
