import type { AuditEntry } from '@hangar/shared';
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
    return rows.map((row) => ({
      id: Number(row.id),
      at: row.at,
      action: row.action,
      actor: row.actor,
      ip: row.ip,
      detail: JSON.parse(row.detail) as Record<string, unknown>,
    }));
  }
}
