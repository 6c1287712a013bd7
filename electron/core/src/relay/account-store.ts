import type Database from 'better-sqlite3';
import {
  DeviceStatus,
  HangarError,
  HostPresence,
  SessionTokens,
  jsonOrUndefined,
  type DeviceView,
} from '@hangar/shared';
import { z } from 'zod';
import { coreDb } from '../state/stored-rows.js';

/**
 * The core's record of its account on a relay (migration 3 in state/db.ts): the login and its
 * tokens, the end-to-end secrets of enrollment tokens this computer made, and the account's hosts
 * as the relay last described them. Every core of this user (a window, each hangar command) opens
 * the same database, so what one refreshes or learns, the others read.
 */

const AccountRow = z.object({
  relay_url: z.string(),
  email: z.string(),
  account_id: z.string(),
  device_id: z.string(),
  device_name: z.string(),
  device_status: DeviceStatus,
  access_token: z.string(),
  access_expires_at: z.number().int(),
  refresh_token: z.string(),
  refresh_expires_at: z.number().int(),
  signed_in_at: z.number().int(),
});
export type StoredAccount = z.infer<typeof AccountRow>;

const EnrollmentSecret = z.object({
  token_id: z.string(),
  account_id: z.string(),
  host_name: z.string(),
  secret: z.string(),
  created_at: z.number().int(),
  expires_at: z.number().int(),
});
export type EnrollmentSecret = z.infer<typeof EnrollmentSecret>;

const AccountTrust = z.object({
  account_id: z.string(),
  approval_code: z.string().nullable(),
  host_trust: z.enum(['bundle', 'relay']).nullable(),
  updated_at: z.number().int(),
  vouched_back_at: z.number().int().nullable(),
});
export type AccountTrust = z.infer<typeof AccountTrust>;

const TrustedKey = z.object({
  account_id: z.string(),
  kind: z.enum(['device', 'host', 'relay_host']),
  key: z.string(),
  name: z.string(),
  cert_fingerprint: z.string().nullable(),
});
export type TrustedKey = z.infer<typeof TrustedKey>;

/** How long a refresh may take before another core may try (a process killed mid-refresh). */
const REFRESH_LEASE_MS = 20_000;

export class AccountStore {
  constructor(private readonly db: Database.Database) {}

  account(): StoredAccount | undefined {
    return coreDb.row(
      this.db,
      'relay_account',
      AccountRow,
      this.db.prepare('SELECT * FROM relay_account WHERE id = 1').get(),
    );
  }

  /** After signup or login: the one account of this computer, replacing none (logout first). */
  signIn(input: {
    relay_url: string;
    account: { account_id: string; email: string };
    device: DeviceView;
    tokens: SessionTokens;
    now: number;
  }): StoredAccount {
    const row: StoredAccount = {
      relay_url: input.relay_url,
      email: input.account.email,
      account_id: input.account.account_id,
      device_id: input.device.device_id,
      device_name: input.device.name,
      device_status: input.device.status,
      access_token: input.tokens.access_token,
      access_expires_at: input.tokens.access_expires_at,
      refresh_token: input.tokens.refresh_token,
      refresh_expires_at: input.tokens.refresh_expires_at,
      signed_in_at: input.now,
    };
    this.db.transaction(() => {
      if (this.account() !== undefined) {
        throw new HangarError('E_EXISTS', 'this computer is already signed in to an account; hangar logout first');
      }
      this.db
        .prepare(
          `INSERT INTO relay_account (id, relay_url, email, account_id, device_id, device_name, device_status,
             access_token, access_expires_at, refresh_token, refresh_expires_at, signed_in_at)
           VALUES (1, @relay_url, @email, @account_id, @device_id, @device_name, @device_status,
             @access_token, @access_expires_at, @refresh_token, @refresh_expires_at, @signed_in_at)`,
        )
        .run(row);
    })();
    return row;
  }

  /** Forgets the account, its hosts and the enrollment secrets kept for it. */
  signOut(): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM relay_account').run();
      this.db.prepare('DELETE FROM account_hosts').run();
      this.db.prepare('DELETE FROM enrollment_secrets').run();
      this.db.prepare('DELETE FROM account_trust').run();
      this.db.prepare('DELETE FROM trusted_keys').run();
    })();
  }

  // ---- whom a computer approved after the first trusts (relay/PROTOCOL.md "the approval code") ----

  trust(accountId: string): AccountTrust | undefined {
    return coreDb.row(
      this.db,
      'account_trust',
      AccountTrust,
      this.db.prepare('SELECT * FROM account_trust WHERE account_id = ?').get(accountId),
    );
  }

  /** A new code for this computer's approval: the bundle sealed with an older one is no longer awaited. */
  keepApprovalCode(accountId: string, code: string, now: number): void {
    this.db
      .prepare(
        `INSERT INTO account_trust (account_id, approval_code, host_trust, updated_at) VALUES (?, ?, NULL, ?)
         ON CONFLICT (account_id) DO UPDATE SET approval_code = excluded.approval_code, updated_at = excluded.updated_at`,
      )
      .run(accountId, code, now);
  }

  /** The bundle opened (its keys trusted), or none came (approved without a code): the code's job is done. */
  settleTrust(
    accountId: string,
    hostTrust: 'bundle' | 'relay',
    keys: Omit<TrustedKey, 'account_id'>[],
    now: number,
  ): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE account_trust SET approval_code = NULL, host_trust = ?, updated_at = ? WHERE account_id = ?')
        .run(hostTrust, now, accountId);
      for (const key of keys) this.trustKey(accountId, key);
    })();
  }

  /** This computer vouched back for its approver (or found it owed none): done once. */
  noteVouchedBack(accountId: string, now: number): void {
    this.db.prepare('UPDATE account_trust SET vouched_back_at = ? WHERE account_id = ?').run(now, accountId);
  }

  trustKey(accountId: string, key: Omit<TrustedKey, 'account_id'>): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO trusted_keys (account_id, kind, key, name, cert_fingerprint)
         VALUES (@account_id, @kind, @key, @name, @cert_fingerprint)`,
      )
      .run({ account_id: accountId, ...key });
  }

  trustedKeys(accountId: string, kind: TrustedKey['kind']): TrustedKey[] {
    const rows = this.db
      .prepare('SELECT * FROM trusted_keys WHERE account_id = ? AND kind = ? ORDER BY rowid')
      .all(accountId, kind);
    return coreDb.rows(this.db, 'trusted_keys', TrustedKey, rows);
  }

  /** Drops the login only (signing in again to the same account replaces it). */
  forgetLogin(): void {
    this.db.prepare('DELETE FROM relay_account').run();
  }

  setDeviceStatus(status: DeviceStatus): void {
    this.db.prepare('UPDATE relay_account SET device_status = ? WHERE id = 1').run(status);
  }

  /** The tokens as stored now (another core may have refreshed them); undefined when signed out. */
  tokens(): SessionTokens | undefined {
    const account = this.account();
    return account === undefined ? undefined : tokensOf(account);
  }

  /**
   * Takes the right to spend `refreshToken` for REFRESH_LEASE_MS, if it is still the stored one
   * and no other core holds that right: one atomic UPDATE, so of two cores only one gets it.
   */
  takeRefreshLease(refreshToken: string, now: number): boolean {
    const taken = this.db
      .prepare(
        `UPDATE relay_account SET refreshing_until = ?
         WHERE id = 1 AND refresh_token = ? AND refreshing_until <= ?`,
      )
      .run(now + REFRESH_LEASE_MS, refreshToken, now);
    return taken.changes === 1;
  }

  /** Stores what a refresh got and ends the lease (the row may be gone: signed out meanwhile). */
  saveRefreshed(spent: string, tokens: SessionTokens): void {
    this.db
      .prepare(
        `UPDATE relay_account SET access_token = @access_token, access_expires_at = @access_expires_at,
           refresh_token = @refresh_token, refresh_expires_at = @refresh_expires_at, refreshing_until = 0
         WHERE id = 1 AND refresh_token = @spent`,
      )
      .run({ ...tokens, spent });
  }

  releaseRefreshLease(refreshToken: string): void {
    this.db
      .prepare('UPDATE relay_account SET refreshing_until = 0 WHERE id = 1 AND refresh_token = ?')
      .run(refreshToken);
  }

  // ---- enrollment secrets -----------------------------------------------------------------

  keepSecret(secret: EnrollmentSecret): void {
    this.db
      .prepare(
        `INSERT INTO enrollment_secrets (token_id, account_id, host_name, secret, created_at, expires_at)
         VALUES (@token_id, @account_id, @host_name, @secret, @created_at, @expires_at)`,
      )
      .run(secret);
  }

  /** Secrets of this account's tokens made for `hostName` before `enrolledAt` (give or take clock skew), newest first. */
  secretsFor(accountId: string, hostName: string, enrolledAt: number, now: number): EnrollmentSecret[] {
    this.db.prepare('DELETE FROM enrollment_secrets WHERE expires_at <= ?').run(now);
    const rows = this.db
      .prepare(
        `SELECT * FROM enrollment_secrets WHERE account_id = ? AND host_name = ? AND created_at <= ?
         ORDER BY created_at DESC`,
      )
      .all(accountId, hostName, enrolledAt + CLOCK_SKEW_MS);
    return coreDb.rows(this.db, 'enrollment_secrets', EnrollmentSecret, rows);
  }

  hasSecret(tokenId: string): boolean {
    return this.db.prepare('SELECT 1 FROM enrollment_secrets WHERE token_id = ?').get(tokenId) !== undefined;
  }

  /** The first link pinned the host: the secret has done its one job. */
  forgetSecret(tokenId: string): void {
    this.db.prepare('DELETE FROM enrollment_secrets WHERE token_id = ?').run(tokenId);
  }

  // ---- the account's hosts as last seen --------------------------------------------------

  cachedHosts(accountId: string): HostPresence[] {
    const rows = this.db.prepare('SELECT presence_json FROM account_hosts WHERE account_id = ?').all(accountId);
    return coreDb.rows(this.db, 'account_hosts', z.object({ presence_json: z.string() }), rows).flatMap((row) => {
      // A copy of what the relay said: one that no longer parses (an older format) is passed
      // over, and the relay's next list replaces it.
      const parsed = HostPresence.safeParse(jsonOrUndefined(row.presence_json));
      return parsed.success ? [parsed.data] : [];
    });
  }

  /** Replaces the cached list (a full hosts.list or a socket's snapshot). */
  cacheHosts(accountId: string, hosts: HostPresence[], now: number): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM account_hosts WHERE account_id = ?').run(accountId);
      for (const host of hosts) this.cacheHost(accountId, host, now);
    })();
  }

  cacheHost(accountId: string, host: HostPresence, now: number): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO account_hosts (host_id, account_id, presence_json, updated_at) VALUES (?, ?, ?, ?)`,
      )
      .run(host.host_id, accountId, JSON.stringify(host), now);
  }

  forgetHost(hostId: string): void {
    this.db.prepare('DELETE FROM account_hosts WHERE host_id = ?').run(hostId);
  }
}

/** A host's enrolled_at is the relay's clock, a secret's created_at ours: this much disagreement is allowed. */
const CLOCK_SKEW_MS = 5 * 60_000;

export function tokensOf(account: StoredAccount): SessionTokens {
  return {
    access_token: account.access_token,
    access_expires_at: account.access_expires_at,
    refresh_token: account.refresh_token,
    refresh_expires_at: account.refresh_expires_at,
  };
}
