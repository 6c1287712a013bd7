/**
 * Numbered schema migrations, applied in order at open (PRAGMA user_version records the last
 * one applied). Never edit a migration that has shipped; append a new one.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'link identity: paired devices and pairing codes',
    sql: `
      CREATE TABLE paired_devices (
        public_key   TEXT PRIMARY KEY,          -- raw Ed25519 key, hex
        name         TEXT NOT NULL,
        paired_at    INTEGER NOT NULL,          -- ms since epoch
        last_seen_at INTEGER
      );
      CREATE TABLE pairing_codes (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        code            TEXT NOT NULL,          -- six digits; the CPace password, so kept in clear
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        used_at         INTEGER,
        revoked_at      INTEGER,                -- superseded by a newer code
        burned_at       INTEGER,                -- too many wrong guesses
        failed_attempts INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
];
