import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { HangarError, type Disposable } from '@hangar/shared';
import { migrateToLatest, type Dialect } from './migrations.js';
import type { RelayTables } from './schema.js';

export type RelayDb = Kysely<RelayTables>;

export type StorageConfig = { kind: 'sqlite'; dataDir: string } | { kind: 'postgres'; url: string };

/** The database plus what the dialect needs beside it: the pg pool (LISTEN, advisory locks). */
export interface RelayStore extends Disposable {
  readonly db: RelayDb;
  readonly dialect: Dialect;
  /** PostgreSQL only: the pool, for a dedicated LISTEN client and the advisory-lock session. */
  readonly pool: pg.Pool | undefined;
  /** Where it is, for logs (never the password of a URL). */
  readonly description: string;
}

const INT8_OID = 20;

export interface OpenStoreOptions {
  migrate?: boolean;
  /**
   * SQLite: false for the commands that only read (audit, doctor): a data directory with no
   * relay.db is an error rather than a new, empty relay (a mistyped --data found nothing).
   */
  create?: boolean;
  /** Errors of idle pooled PostgreSQL clients (a server restart); queries report their own. */
  onPoolError?: (error: Error) => void;
}

export async function openStore(config: StorageConfig, options: OpenStoreOptions = {}): Promise<RelayStore> {
  const store =
    config.kind === 'sqlite'
      ? openSqlite(config.dataDir, options.create !== false)
      : openPostgres(
          config.url,
          options.onPoolError ?? ((error) => process.stderr.write(`relay db: ${error.message}\n`)),
        );
  if (options.migrate !== false) {
    try {
      await migrateToLatest(store.db as never, store.dialect);
    } catch (error) {
      await store.dispose();
      throw error;
    }
  }
  return store;
}

function openSqlite(dataDir: string, create: boolean): RelayStore {
  const file = join(dataDir, 'relay.db');
  if (!create && !existsSync(file)) {
    throw new HangarError(
      'E_NOT_FOUND',
      `no relay database at ${file}: give --data the directory \`hangar-relay serve\` uses ` +
        '(or --database for PostgreSQL); serve or migrate creates it',
    );
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // 0600 from the start: the file holds password hashes and the access-token key.
  closeSync(openSync(file, 'a', 0o600));
  const database = new Database(file);
  database.pragma('journal_mode = WAL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  // synchronous=NORMAL in WAL survives a process crash (kill -9) with nothing lost; only an OS
  // crash can roll back the last transactions, which is the trade every WAL server makes.
  database.pragma('synchronous = NORMAL');
  const db = new Kysely<RelayTables>({ dialect: new SqliteDialect({ database }) });
  return {
    db,
    dialect: 'sqlite',
    pool: undefined,
    description: file,
    dispose: () => db.destroy(),
  };
}

function openPostgres(url: string, onPoolError: (error: Error) => void): RelayStore {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // Times are bigint columns: read them back as numbers (they are far below 2^53).
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as never,
    },
  });
  // An idle client losing its server (a restart) must not crash the relay; it is logged.
  pool.on('error', onPoolError);
  const db = new Kysely<RelayTables>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    pool,
    description: redactUrl(url),
    dispose: () => db.destroy(),
  };
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

/** SELECT 1, for /healthz and doctor. */
export async function ping(db: RelayDb): Promise<void> {
  await sql`select 1`.execute(db);
}
