import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { newEntitlementKeyHex } from '../billing/entitlement-key.js';

/**
 * Migration 002: billing (relay/PROTOCOL.md "Billing"). Stripe customers and subscriptions as
 * last fetched from Stripe, the ids of webhook events already applied, usage records (one row per
 * host, attempt and started minute; the same row is the meter outbox), account members and
 * invitations, and which member a device belongs to.
 */
export async function billingSchema(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('billing_customers')
    .addColumn('account_id', 'text', (c) => c.primaryKey().references('accounts.id').onDelete('cascade'))
    .addColumn('stripe_customer_id', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('subscriptions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('stripe_customer_id', 'text', (c) => c.notNull())
    .addColumn('plan', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('cancel_at_period_end', 'integer', (c) => c.notNull())
    .addColumn('period_start', 'bigint', (c) => c.notNull())
    .addColumn('period_end', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('fetched_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('subscriptions_account').on('subscriptions').column('account_id').execute();
  await db.schema
    .createTable('stripe_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text')
    .addColumn('applied_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('usage_records')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('host_id', 'text', (c) => c.notNull())
    .addColumn('attempt_id', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('minute_index', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    /** started_at + minute_index × minute size: the minute's own time, what periods and days count. */
    .addColumn('minute_at', 'bigint', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    /** The outbox: 'pending' (to send), 'sent', 'failed' (Stripe refused it for good), 'none' (not billed). */
    .addColumn('meter_state', 'text', (c) => c.notNull())
    .addColumn('stripe_customer_id', 'text')
    .addColumn('send_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_send_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('sent_at', 'bigint')
    .addColumn('last_error', 'text')
    .execute();
  await db.schema
    .createIndex('usage_account_minute')
    .on('usage_records')
    .columns(['account_id', 'minute_at'])
    .execute();
  await db.schema.createIndex('usage_outbox').on('usage_records').columns(['meter_state', 'next_send_at']).execute();
  await db.schema
    .createTable('account_members')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    /** A member's own password (scrypt, like accounts.password_hash); null for the owner (theirs is on the account). */
    .addColumn('password_hash', 'text')
    .addColumn('invite_hash', 'text', (c) => c.unique())
    .addColumn('invited_by', 'text')
    .addColumn('invited_at', 'bigint')
    .addColumn('invite_expires_at', 'bigint')
    .addColumn('joined_at', 'bigint')
    .addPrimaryKeyConstraint('account_members_pk', ['account_id', 'email'])
    .execute();
  await db.schema.createIndex('account_members_email').on('account_members').column('email').execute();
  // Every existing account's owner becomes its first member row.
  await sql`insert into account_members (account_id, email, role, joined_at)
            select id, email, 'owner', created_at from accounts`.execute(db);
  await db.schema.alterTable('devices').addColumn('member_email', 'text').execute();
  // The entitlement key is made here, so `hangar-relay migrate` leaves a relay ready to sign; and
  // the access-token key too (001 left it to the first serve, while doctor sends people to migrate).
  await sql`insert into meta (key, value) values ('entitlement_key', ${newEntitlementKeyHex()})`.execute(db);
  await sql`insert into meta (key, value) values ('access_token_key', ${randomBytes(32).toString('hex')})
            on conflict (key) do nothing`.execute(db);
}
