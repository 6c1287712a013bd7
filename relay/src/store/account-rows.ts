import type { Kysely } from 'kysely';
import type { RelayDb } from './db.js';
import type { RelayTables } from './schema.js';

/** The tables whose rows belong to one account (they have an account_id). */
type AccountTable = {
  [T in keyof RelayTables]: RelayTables[T] extends { account_id: string } ? T : never;
}[keyof RelayTables];

/**
 * kysely cannot type a query over a table that a type parameter names: the functions' signatures
 * carry the types, and their queries see every account table as rows with an account_id.
 */
function untyped(db: RelayDb) {
  return db as unknown as Kysely<Record<AccountTable, { account_id: string } & Record<string, unknown>>>;
}

/** Every row of `table` in the account, in `orderBy` order. */
export function accountRows<T extends AccountTable>(
  db: RelayDb,
  table: T,
  accountId: string,
  orderBy: keyof RelayTables[T] & string,
): Promise<RelayTables[T][]> {
  return untyped(db)
    .selectFrom(table as AccountTable)
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy(orderBy)
    .execute() as Promise<RelayTables[T][]>;
}

/** The row of `table` with that id if it is in the account (another account's is not found). */
export function accountRow<T extends Exclude<AccountTable, 'billing_customers' | 'account_members'>>(
  db: RelayDb,
  table: T,
  id: string,
  accountId: string,
): Promise<RelayTables[T] | undefined> {
  return untyped(db)
    .selectFrom(table as AccountTable)
    .selectAll()
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .executeTakeFirst() as Promise<RelayTables[T] | undefined>;
}
