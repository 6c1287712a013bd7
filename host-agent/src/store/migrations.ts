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
  {
    version: 2,
    name: 'jobs: queue, attempts, artifacts, content-addressed workspaces',
    sql: `
      CREATE TABLE jobs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- FIFO order; kept when a job is requeued
        id           TEXT NOT NULL UNIQUE,
        spec         TEXT NOT NULL,          -- JobSpec as JSON, parsed with the same schema on read
        executor     TEXT NOT NULL,
        state        TEXT NOT NULL,
        device       TEXT NOT NULL,          -- public key of the submitting device
        created_at   INTEGER NOT NULL,
        queued_at    INTEGER NOT NULL,       -- when it (re)entered the queue, for the "queued" timing
        not_before   INTEGER NOT NULL DEFAULT 0, -- retry backoff: not dispatched earlier
        finished_at  INTEGER,
        exit_code    INTEGER,
        attempt      INTEGER NOT NULL DEFAULT 0,
        failures     INTEGER NOT NULL DEFAULT 0, -- attempts counted against spec.retries
        error        TEXT
      );
      CREATE INDEX jobs_by_state ON jobs(state, seq);
      CREATE TABLE job_attempts (
        job_id       TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        number       INTEGER NOT NULL,
        state        TEXT NOT NULL,
        executor     TEXT NOT NULL,
        exit_code    INTEGER,
        started_at   INTEGER,
        finished_at  INTEGER,
        log_size     INTEGER NOT NULL DEFAULT 0,
        timings      TEXT NOT NULL DEFAULT '{}',
        checkpoint   TEXT,                   -- executor state for recovery after a crash
        error        TEXT,
        PRIMARY KEY (job_id, number)
      );
      CREATE TABLE job_artifacts (
        job_id   TEXT NOT NULL,
        attempt  INTEGER NOT NULL,
        path     TEXT NOT NULL,
        size     INTEGER NOT NULL,
        sha256   TEXT NOT NULL,
        PRIMARY KEY (job_id, attempt, path),
        FOREIGN KEY (job_id, attempt) REFERENCES job_attempts(job_id, number) ON DELETE CASCADE
      );
      CREATE TABLE workspaces (
        hash         TEXT PRIMARY KEY,
        size         INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'previews: the ports paired devices chose to serve through the link',
    sql: `
      CREATE TABLE previews (
        port        INTEGER PRIMARY KEY,     -- TCP port on the host's loopback, 1-65535
        label       TEXT,
        created_at  INTEGER NOT NULL,
        device      TEXT NOT NULL            -- public key of the device that added it
      );
    `,
  },
  {
    version: 4,
    name: 'jobs: secret environment values, sealed (AES-256-GCM, key in secret-env.key)',
    sql: `
      CREATE TABLE job_secrets (
        job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        name    TEXT NOT NULL,               -- the variable's name (listed; only the value is secret)
        nonce   BLOB NOT NULL,               -- 12 random bytes, one per value
        sealed  BLOB NOT NULL,               -- ciphertext then the 16-byte tag; job id and name are the associated data
        PRIMARY KEY (job_id, name)
      );
    `,
  },
  {
    version: 5,
    name: 'relay: the enrollment, first links keyed by an end-to-end secret, statements applied',
    sql: `
      CREATE TABLE relay_enrollment (
        id             INTEGER PRIMARY KEY CHECK (id = 1), -- a host is enrolled on one relay at a time
        relay_url      TEXT NOT NULL,
        host_id        TEXT NOT NULL,
        account_id     TEXT NOT NULL,
        name           TEXT NOT NULL,
        enrolled_at    INTEGER NOT NULL,
        statements_seq INTEGER NOT NULL DEFAULT 0, -- highest statement seq of the account applied here
        state          TEXT,                       -- the relay link as serve last saw it, for status
        state_error    TEXT,
        state_at       INTEGER,
        state_pid      INTEGER
      );
      CREATE TABLE relay_first_links (
        token_id   TEXT PRIMARY KEY,
        device_key TEXT NOT NULL,                  -- the token's d: the only device it pairs
        e2e_secret TEXT,                           -- the token's e (32 bytes hex); NULL once used or void
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER                         -- kept, so a replayed token is recognised
      );
      CREATE TABLE revoked_devices (
        public_key TEXT PRIMARY KEY,               -- stays revoked: a later endorsement is ignored
        revoked_at INTEGER NOT NULL,
        revoked_by TEXT NOT NULL,                  -- key of the pinned device that signed it
        seq        INTEGER NOT NULL
      );
      CREATE TABLE held_statements (
        seq        INTEGER PRIMARY KEY,            -- signed by a device whose first link is still to come
        signer_key TEXT NOT NULL,
        statement  TEXT NOT NULL                   -- StoredStatement JSON, parsed with its schema on read
      );
      ALTER TABLE paired_devices ADD COLUMN paired_via TEXT NOT NULL DEFAULT 'code'; -- code, enrollment, endorsement
      ALTER TABLE paired_devices ADD COLUMN endorsed_by TEXT;
    `,
  },
  {
    version: 6,
    name: 'billing: the relay entitlement key and latest entitlement, metered attempts, usage records until acked',
    sql: `
      ALTER TABLE relay_enrollment ADD COLUMN entitlement_key TEXT; -- the relay's key from hosts.enroll (or the first welcome)
      CREATE TABLE relay_entitlement (
        id          INTEGER PRIMARY KEY CHECK (id = 1), -- the latest one the relay signed for this host
        host_id     TEXT NOT NULL,
        entitlement TEXT NOT NULL,                 -- Entitlement JSON, verified again with its schema and key on read
        received_at INTEGER NOT NULL
      );
      CREATE TABLE metered_attempts (
        attempt_id  TEXT PRIMARY KEY,              -- <job id>:<attempt number>, the usage records' attempt_id
        job_id      TEXT NOT NULL,
        host_id     TEXT NOT NULL,                 -- the enrollment it is billed to
        started_at  INTEGER NOT NULL,
        minute_ms   INTEGER NOT NULL,              -- from the entitlement when it started (the relay's minute)
        minutes     INTEGER NOT NULL DEFAULT 0,    -- started minutes recorded so far
        ended_at    INTEGER
      );
      CREATE TABLE usage_outbox (
        key        TEXT PRIMARY KEY,               -- usageRecordKey: one (host, attempt, minute)
        host_id    TEXT NOT NULL,
        record     TEXT NOT NULL,                  -- the signed UsageRecord JSON, sent as is until the relay acks it
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'agent tasks: each task this host claimed, its session and state',
    sql: `
      CREATE TABLE tasks (
        id          TEXT PRIMARY KEY,          -- t- and 16 hex digits, the queue's id (claims are idempotent by it)
        spec        TEXT NOT NULL,             -- TaskSpec JSON, parsed with the same schema on read
        state       TEXT NOT NULL,
        session     TEXT NOT NULL,             -- the tmux session it runs in (task-<first 8 hex digits>)
        device      TEXT NOT NULL,             -- public key of the device that handed it over
        created_at  INTEGER NOT NULL,          -- when it was queued
        claimed_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        finished_at INTEGER,
        detail      TEXT,
        reason      TEXT,
        exit_code   INTEGER
      );
      CREATE INDEX tasks_by_state ON tasks(state);
    `,
  },
  {
    version: 8,
    name: 'agent tasks: whether git failed to make a task worktree (then it has none)',
    sql: `
      ALTER TABLE tasks ADD COLUMN worktree_failed INTEGER NOT NULL DEFAULT 0; -- 1: git worktree add failed, what it made removed
    `,
  },
  {
    version: 9,
    name: 'backups: what this host backs up (one row), and each restic run of it',
    sql: `
      CREATE TABLE backup_settings (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        settings    TEXT NOT NULL,             -- BackupSettings JSON, parsed with the same schema on read
        updated_at  INTEGER NOT NULL           -- the schedule counts from here until the first run
      );
      CREATE TABLE backup_runs (
        id          TEXT PRIMARY KEY,          -- b- and 16 hex digits
        kind        TEXT NOT NULL,             -- backup, restore
        trigger     TEXT NOT NULL,             -- user, schedule
        state       TEXT NOT NULL,             -- running, ok, error
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        snapshot    TEXT,                      -- restic's snapshot id, made or restored from
        files       INTEGER,
        bytes       INTEGER,
        added_bytes INTEGER,
        message     TEXT,
        restore_to  TEXT
      );
      CREATE INDEX backup_runs_by_start ON backup_runs(started_at);
    `,
  },
  {
    version: 10,
    name: 'relay: every statement of the account that verifies is kept, applied once its signer is trusted',
    sql: `
      CREATE TABLE account_statements (
        seq        INTEGER PRIMARY KEY,            -- the relay's seq in the account
        signer_key TEXT NOT NULL,
        statement  TEXT NOT NULL,                  -- StoredStatement JSON, parsed with its schema on read
        applied_at INTEGER                         -- NULL while its signer is not trusted here (yet)
      );
      INSERT INTO account_statements (seq, signer_key, statement)
        SELECT seq, signer_key, statement FROM held_statements;
      DELETE FROM held_statements;
      -- What the host had applied before it reads the account again: an endorsement up to this seq,
      -- signed by a device pinned then, of one not pinned then, was applied and the device unpaired
      -- since (hangar-agent unpair): statements.ts does not pin it again (migration 11's tombstone).
      CREATE TABLE relay_pre_chain (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        statements_seq INTEGER NOT NULL
      );
      INSERT INTO relay_pre_chain (id, statements_seq) SELECT 1, statements_seq FROM relay_enrollment;
      CREATE TABLE relay_pre_chain_pins (public_key TEXT PRIMARY KEY);
      INSERT INTO relay_pre_chain_pins (public_key) SELECT public_key FROM paired_devices;
      -- Statements signed by a device this host did not pin were dropped before: read them all again.
      UPDATE relay_enrollment SET statements_seq = 0;
    `,
  },
  {
    version: 11,
    name: 'pairing: devices the host owner unpaired, which no endorsement pins again (only a new pairing)',
    sql: `
      CREATE TABLE unpaired_devices (
        public_key  TEXT PRIMARY KEY,
        unpaired_at INTEGER NOT NULL
      );
      -- A development build ran migration 10 without these (empty: nothing to protect from then).
      CREATE TABLE IF NOT EXISTS relay_pre_chain (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        statements_seq INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS relay_pre_chain_pins (public_key TEXT PRIMARY KEY);
      -- settle() looks up what waits by its signer.
      CREATE INDEX account_statements_waiting ON account_statements(signer_key) WHERE applied_at IS NULL;
      -- A statement the relay sends again under a new seq is kept once (statements.ts).
      ALTER TABLE account_statements ADD COLUMN signature TEXT;
      UPDATE account_statements SET signature = json_extract(statement, '$.signature');
      CREATE INDEX account_statements_by_signature ON account_statements(signature);
    `,
  },
  {
    version: 12,
    name: 'backups: the staging directory a restore writes into, removed at start if a crash left it',
    sql: `
      ALTER TABLE backup_runs ADD COLUMN restore_staging TEXT; -- the agent's .<name>.restoring-XXXXXX beside the target
    `,
  },
  {
    version: 13,
    name: "backups: the user's exclude patterns (restic --exclude), beside the settings an older agent still reads",
    sql: `
      ALTER TABLE backup_settings ADD COLUMN excludes TEXT NOT NULL DEFAULT '[]'; -- JSON array of BackupExclude
    `,
  },
];
