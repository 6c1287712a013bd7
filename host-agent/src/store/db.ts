import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Disposable } from '@hangar/shared';
import { MIGRATIONS, type Migration } from './migrations.js';

/**
 * The agent's SQLite database. WAL lets the CLI (`hangar-agent pair`) write a pairing code
 * while the running server reads, without either blocking for long.
 */
export class AgentStore implements Disposable {
  private constructor(readonly db: Database.Database) {}

  /** Opens (creating and migrating) `<dataDir>/agent.db`. */
  static open(dataDir: string, migrations: readonly Migration[] = MIGRATIONS): AgentStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = agentDbPath(dataDir);
    // Create the file 0600 up front: it holds pairing codes and the list of trusted devices.
    closeSync(openSync(file, 'a', 0o600));
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    // What a deleted row held (a job's sealed secrets, a used pairing code) is zeroed in the file,
    // not left in a free page; the agent deletes little, so the extra writes cost nothing to speak of.
    db.pragma('secure_delete = ON');
    // The CLI and the server share the file; wait for a writer instead of failing at once.
    db.pragma('busy_timeout = 5000');
    migrate(db, migrations);
    return new AgentStore(db);
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  dispose(): void {
    if (this.db.open) this.db.close();
  }
}

export function agentDbPath(dataDir: string): string {
  return join(dataDir, 'agent.db');
}

function migrate(db: Database.Database, migrations: readonly Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const pending = [...migrations].sort((a, b) => a.version - b.version).filter((m) => m.version > current);
  for (const migration of pending) {
    // Each migration and its version bump commit together, so a crash leaves no half schema.
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}
