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
  // The account on a relay (relay/PROTOCOL.md): one at a time. Its tokens are shared by every core
  // of this user (a window, hangar commands); refreshing_until is the lease that lets one of them
  // spend the refresh token (the relay revokes a login whose refresh token is presented twice).
  // Enrollment secrets: the end-to-end part of each token this computer made, kept until the first
  // link to the host pinned it. Account hosts: the relay's last word on each, shown while it is away.
  // hosts.last_seen: when this computer last had a link to a paired host.
  `CREATE TABLE relay_account (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     relay_url TEXT NOT NULL,
     email TEXT NOT NULL,
     account_id TEXT NOT NULL,
     device_id TEXT NOT NULL,
     device_name TEXT NOT NULL,
     device_status TEXT NOT NULL,
     access_token TEXT NOT NULL,
     access_expires_at INTEGER NOT NULL,
     refresh_token TEXT NOT NULL,
     refresh_expires_at INTEGER NOT NULL,
     refreshing_until INTEGER NOT NULL DEFAULT 0,
     signed_in_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE enrollment_secrets (
     token_id TEXT PRIMARY KEY,
     account_id TEXT NOT NULL,
     host_name TEXT NOT NULL,
     secret TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE account_hosts (
     host_id TEXT PRIMARY KEY,
     account_id TEXT NOT NULL,
     presence_json TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;
   ALTER TABLE hosts ADD COLUMN last_seen INTEGER;`,
  // Agent tasks waiting for a host (tasks/task-queue.ts), and where each went once claimed.
  // lease_until: the core offering it now (so two cores of this user never offer one task at once).
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     spec TEXT NOT NULL,
     host_pin TEXT,
     state TEXT NOT NULL,
     host TEXT,
     reason TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     lease_until INTEGER NOT NULL DEFAULT 0
   ) STRICT;
   CREATE INDEX tasks_by_state ON tasks(state, created_at);`,
  // How a computer approved after the account's first learns whom to trust (relay/PROTOCOL.md "More
  // devices: the approval code"): the code it showed (kept until its approver's bundle is opened),
  // then where its hosts' keys come from: 'bundle' (its approver, through the user) or 'relay'
  // (approved without a code). Trusted keys: the bundle's devices and hosts, and the hosts taken
  // on the relay's word (marked so in hangar hosts ls).
  `CREATE TABLE account_trust (
     account_id TEXT PRIMARY KEY,
     approval_code TEXT,
     host_trust TEXT CHECK (host_trust IN ('bundle', 'relay')),
     updated_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE trusted_keys (
     account_id TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('device', 'host', 'relay_host')),
     key TEXT NOT NULL,
     name TEXT NOT NULL,
     cert_fingerprint TEXT,
     PRIMARY KEY (account_id, kind, key)
   ) STRICT;`,
  // When this computer vouched back for the computer that approved it with the code (relay/PROTOCOL.md
  // "Trust follows the chain"): NULL on a computer whose trust was settled before it did so.
  `ALTER TABLE account_trust ADD COLUMN vouched_back_at INTEGER;`,
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
