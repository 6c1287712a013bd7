import { Migrator, sql, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import { HangarError } from '@hangar/shared';
import { billingSchema } from './billing-migration.js';

export type Dialect = 'sqlite' | 'postgres';

/**
 * Numbered migrations, one code path for both dialects (kysely's schema builder); where the
 * dialects differ (an auto-increment key) the migration says so. Kysely's Migrator records
 * what ran in `kysely_migration` and, on PostgreSQL, takes a lock so that replicas starting
 * together migrate once.
 */
function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '001_init': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('meta')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('accounts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('email', 'text', (c) => c.notNull().unique())
          .addColumn('password_hash', 'text')
          .addColumn('oidc_issuer', 'text')
          .addColumn('oidc_subject', 'text')
          .addColumn('statement_seq', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('accounts_oidc', ['oidc_issuer', 'oidc_subject'])
          .execute();
        await db.schema
          .createTable('devices')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('last_seen', 'bigint')
          .addColumn('endorsed_by', 'text')
          .addColumn('revoked_by', 'text')
          .addUniqueConstraint('devices_account_key', ['account_id', 'public_key'])
          .execute();
        await db.schema
          .createTable('refresh_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('family_id', 'text', (c) => c.notNull())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .addColumn('revoked_at', 'bigint')
          .execute();
        await db.schema.createIndex('refresh_tokens_family').on('refresh_tokens').column('family_id').execute();
        await db.schema
          .createTable('enroll_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('secret_hash', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .addColumn('host_id', 'text')
          .execute();
        await db.schema
          .createTable('hosts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('public_key', 'text', (c) => c.notNull().unique())
          .addColumn('cert_fingerprint', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('enrolled_at', 'bigint', (c) => c.notNull())
          .addColumn('enrolled_by', 'text', (c) => c.notNull())
          .addColumn('online', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('replica_id', 'text')
          .addColumn('connection_id', 'text')
          .addColumn('last_seen', 'bigint')
          .addColumn('record_json', 'text')
          .addColumn('record_signature', 'text')
          .addColumn('presence_version', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.createIndex('hosts_account').on('hosts').column('account_id').execute();
        await db.schema
          .createTable('statements')
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('subject_device_id', 'text', (c) => c.notNull())
          .addColumn('subject_device_key', 'text', (c) => c.notNull())
          .addColumn('subject_name', 'text', (c) => c.notNull())
          .addColumn('issued_at', 'bigint', (c) => c.notNull())
          .addColumn('signer_device_key', 'text', (c) => c.notNull())
          .addColumn('signature', 'text', (c) => c.notNull())
          .addColumn('stored_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('statements_pk', ['account_id', 'seq'])
          .execute();
        await db.schema
          .createTable('audit')
          // The one place the dialects differ: an auto-increment key.
          .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
            dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('account_id', 'text')
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('ip', 'text')
          .addColumn('request_id', 'text')
          .addColumn('detail', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_account').on('audit').columns(['account_id', 'id']).execute();
        await db.schema
          .createTable('replicas')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('bus_messages')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '002_billing': { up: billingSchema },
    // A pending device's approval tag (HMAC of the code the user carries to a trusted computer) and
    // the bundle its approver sealed for it (relay/PROTOCOL.md "More devices: the approval code").
    '003_device_approvals': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('device_approvals')
          .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id').onDelete('cascade'))
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('tag', 'text')
          .addColumn('bundle_json', 'text')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        // Devices' statements that a host has its key (hosts.vouch), a JSON array.
        await db.schema.alterTable('hosts').addColumn('vouches_json', 'text').execute();
      },
    },
    // People the owner removed from a Team account, with their password hash, to tell them so at
    // sign-in: dropped by 005.
    '004_removed_members': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('removed_members')
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('email', 'text', (c) => c.notNull())
          .addColumn('password_hash', 'text')
          .addColumn('removed_at', 'bigint', (c) => c.notNull())
          .addColumn('removed_by', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('removed_members_pk', ['account_id', 'email'])
          .execute();
        await db.schema.createIndex('removed_members_email').on('removed_members').column('email').execute();
      },
    },
    // The removed people's password hashes go (relay/PROTOCOL.md "Team members: removing a person"):
    // a secret-derived value of someone who left is kept for no one; they get the refusal anyone gets.
    // And the sweeper finds expired invitations by an index, not by reading every member.
    '005_forget_removed_members': {
      async up(db: Kysely<unknown>) {
        await db.schema.dropTable('removed_members').execute();
        await db.schema
          .createIndex('account_members_invite_expires')
          .on('account_members')
          .column('invite_expires_at')
          .execute();
      },
    },
    // An enrollment token remembers the login that made it, so that logging out ends what that
    // login made and nobody used yet (hosts.enroll asks; relay/PROTOCOL.md "Enrolling a host").
    '006_enroll_token_login': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('enroll_tokens').addColumn('session_id', 'text').execute();
      },
    },
  };
}

export async function migrateToLatest(db: Kysely<unknown>, dialect: Dialect): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(dialect) } });
  const result = await migrator.migrateToLatest();
  if (result.error !== undefined) {
    const reason = result.error instanceof Error ? result.error.message : String(result.error);
    throw new HangarError('E_INTERNAL', `database migration failed: ${reason}`);
  }
  return result;
}

/** Names of migrations not yet applied (doctor). */
export async function pendingMigrations(db: Kysely<unknown>, dialect: Dialect): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(dialect) } });
  const all = await migrator.getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}

export { sql };
