import { AuditEntry } from '@hangar/shared';
import type { RelayDb } from '../store/db.js';

/** Who did a privileged action, from where, for which account. */
export interface AuditContext {
  accountId: string | null;
  actor: string;
  ip: string | null;
  requestId: string | null;
}

/**
 * The audit log: every privileged action (signup, login, tokens made and used, hosts enrolled
 * and removed, devices endorsed and revoked, refresh-token reuse). `detail` holds ids and
 * names only, never a secret.
 */
export class AuditLog {
  constructor(
    private readonly db: RelayDb,
    private readonly now: () => number,
  ) {}

  async record(context: AuditContext, action: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.db
      .insertInto('audit')
      .values({
        at: this.now(),
        account_id: context.accountId,
        actor: context.actor,
        action,
        ip: context.ip,
        request_id: context.requestId,
        detail: JSON.stringify(detail),
      })
      .execute();
  }

  async list(options: { accountId?: string; before?: number; limit: number }): Promise<AuditEntry[]> {
    let query = this.db.selectFrom('audit').selectAll().orderBy('id', 'desc').limit(options.limit);
    if (options.accountId !== undefined) query = query.where('account_id', '=', options.accountId);
    if (options.before !== undefined) query = query.where('id', '<', options.before);
    const rows = await query.execute();
    const people = await this.people(rows.map((row) => row.actor));
    return rows.map((row) => ({
      id: Number(row.id),
      at: row.at,
      action: row.action,
      actor: row.actor,
      by: people.get(row.actor) ?? null,
      ip: row.ip,
      detail: AuditEntry.shape.detail.parse(JSON.parse(row.detail)),
    }));
  }

  /** `device:<id>` → the email of the person whose device it is (a member's, else the account owner's). */
  private async people(actors: string[]): Promise<Map<string, string>> {
    const ids = [...new Set(actors.filter((a) => a.startsWith('device:')).map((a) => a.slice('device:'.length)))];
    if (ids.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('devices')
      .innerJoin('accounts', 'accounts.id', 'devices.account_id')
      .select(['devices.id', 'devices.member_email', 'accounts.email'])
      .where('devices.id', 'in', ids)
      .execute();
    return new Map(rows.map((row) => [`device:${row.id}`, row.member_email ?? row.email]));
  }
}
