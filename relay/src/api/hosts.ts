import { randomBytes, timingSafeEqual } from 'node:crypto';
import { HangarError, HostStatement, enrollProofBytes, verifyHex, verifyHostStatement } from '@hangar/shared';
import type { ExpressionBuilder, Kysely, Selectable } from 'kysely';
import { z } from 'zod';
import { newId, sha256Hex } from '../accounts/tokens.js';
import { hostPresence, type RelayContext } from '../context.js';
import { auditContext, signedIn, type Handlers } from './call.js';
import { accountRows } from '../store/account-rows.js';
import type { RelayTables } from '../store/schema.js';

/** An enrollment token's relay part lives this long (the line a user pastes on a host). */
export const ENROLL_TOKEN_TTL_MS = 15 * 60_000;

const MAKE_ANOTHER = 'make a new one with `hangar hosts enroll-token`';

type EnrollToken = Selectable<RelayTables['enroll_tokens']>;
type TokenTables = ExpressionBuilder<RelayTables, 'enroll_tokens'>;

/**
 * The computer that made the token is still on its account and trusted there (isTrusted): not
 * revoked, nor waiting for approval again because the device that approved it was revoked.
 */
function makerTrusted(eb: TokenTables, token: EnrollToken) {
  return eb
    .selectFrom('devices')
    .select('devices.id')
    .where('devices.id', '=', token.device_id)
    .where('devices.account_id', '=', token.account_id)
    .where('devices.status', 'in', ['first', 'endorsed']);
}

/**
 * The login that made the token is not ended: a logout (or a reused refresh token, which ends the
 * login too) ends what it made and nobody used. A token made before the relay kept its login
 * (session_id null, migration 006) asks for any live login of its computer.
 */
function loginLive(eb: TokenTables, token: EnrollToken) {
  const query = eb
    .selectFrom('refresh_tokens')
    .select('refresh_tokens.id')
    .where('refresh_tokens.device_id', '=', token.device_id)
    .where('refresh_tokens.revoked_at', 'is', null);
  return token.session_id === null ? query : query.where('refresh_tokens.family_id', '=', token.session_id);
}

/** Why the token's computer or login can no longer enroll a host, if it cannot. */
async function makerRefusal(db: Kysely<RelayTables>, token: EnrollToken): Promise<HangarError | undefined> {
  const row = await db
    .selectFrom('enroll_tokens')
    .select((eb) => [eb.exists(makerTrusted(eb, token)).as('trusted'), eb.exists(loginLive(eb, token)).as('live')])
    .where('enroll_tokens.id', '=', token.id)
    .executeTakeFirst();
  // SQLite answers exists with 0/1, PostgreSQL with booleans.
  if (row === undefined || !row.trusted) {
    return new HangarError(
      'E_TOKEN_INVALID',
      `the computer that made this enrollment token is no longer trusted on its account (revoked, or waiting for approval again); ${MAKE_ANOTHER} on a computer the account trusts`,
    );
  }
  if (!row.live) {
    return new HangarError(
      'E_TOKEN_INVALID',
      `the login that made this enrollment token was ended since (logged out); ${MAKE_ANOTHER} after signing in again`,
    );
  }
  return undefined;
}

export const hostHandlers: Pick<
  Handlers,
  'hosts.enroll_token' | 'hosts.enroll' | 'hosts.list' | 'hosts.remove' | 'hosts.vouch'
> = {
  async 'hosts.enroll_token'(ctx, params, call) {
    const device = signedIn(call);
    ctx.limits.take('enrollToken', device.account_id, 'enrollment tokens for this account');
    const tokenId = newId('tok');
    const secret = randomBytes(32).toString('hex');
    const now = ctx.now();
    const expiresAt = now + ENROLL_TOKEN_TTL_MS;
    await ctx.db
      .insertInto('enroll_tokens')
      .values({
        id: tokenId,
        account_id: device.account_id,
        device_id: device.id,
        name: params.name,
        secret_hash: sha256Hex(secret),
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
        host_id: null,
        session_id: call.sessionId ?? null,
      })
      .execute();
    await ctx.audit.record(auditContext(call, device.account_id), 'enroll_token.created', {
      token_id: tokenId,
      name: params.name,
    });
    return { token_id: tokenId, relay_secret: secret, expires_at: expiresAt };
  },

  async 'hosts.enroll'(ctx, params, call) {
    ctx.limits.take('enroll', call.ip, 'enrollment attempts from this address');
    const proofBytes = enrollProofBytes({
      tokenId: params.token_id,
      publicKey: params.host.public_key,
      certFingerprint: params.host.cert_fingerprint,
    });
    if (!verifyHex(params.host.public_key, proofBytes, params.proof)) {
      throw new HangarError('E_AUTH_BAD_SIGNATURE', 'proof does not verify with host.public_key (enrollProofBytes)');
    }
    const token = await ctx.db
      .selectFrom('enroll_tokens')
      .selectAll()
      .where('id', '=', params.token_id)
      .executeTakeFirst();
    const refuse = async (error: HangarError, accountId: string | null) => {
      ctx.metrics.enrollments.inc({ outcome: 'refused' });
      await ctx.audit.record(auditContext(call, accountId, 'anonymous'), 'enroll.refused', {
        token_id: params.token_id,
        reason: error.code,
        host_key: params.host.public_key,
      });
      return error;
    };
    const expected = Buffer.from(token?.secret_hash ?? '0'.repeat(64), 'hex');
    const given = Buffer.from(sha256Hex(params.relay_secret), 'hex');
    if (token === undefined || !timingSafeEqual(expected, given)) {
      throw await refuse(
        new HangarError('E_TOKEN_INVALID', `this enrollment token is not valid on this relay; ${MAKE_ANOTHER}`),
        token?.account_id ?? null,
      );
    }
    if (token.used_at !== null) {
      throw await refuse(
        new HangarError('E_TOKEN_USED', `this enrollment token was already used (each works once); ${MAKE_ANOTHER}`),
        token.account_id,
      );
    }
    const now = ctx.now();
    if (token.expires_at <= now) {
      throw await refuse(
        new HangarError('E_TOKEN_EXPIRED', `this enrollment token expired (they last 15 minutes); ${MAKE_ANOTHER}`),
        token.account_id,
      );
    }
    // The token acts for the computer and the login that made it (makerRefusal); checked here for a
    // clear refusal, and again in the statement that spends it, so that a revocation or a logout
    // that lands in between still enrolls nothing.
    const early = await makerRefusal(ctx.db, token);
    if (early !== undefined) throw await refuse(early, token.account_id);
    const known = await ctx.db
      .selectFrom('hosts')
      .select(['id', 'account_id'])
      .where('public_key', '=', params.host.public_key)
      .executeTakeFirst();
    if (known !== undefined && known.account_id !== token.account_id) {
      throw await refuse(
        new HangarError(
          'E_HOST_OTHER_ACCOUNT',
          'this host is enrolled in another account; remove it there first (hangar hosts rm), then enroll again',
        ),
        token.account_id,
      );
    }
    if (ctx.afterEnrollChecks) await ctx.afterEnrollChecks();
    const hostId = known?.id ?? newId('host');
    const claimed = await ctx.db.transaction().execute(async (trx) => {
      // The token is spent in the same transaction that enrolls: of two racing uses, one wins.
      const spent = await trx
        .updateTable('enroll_tokens')
        .set({ used_at: now, host_id: hostId })
        .where('id', '=', token.id)
        .where('used_at', 'is', null)
        .where((eb) => eb.exists(makerTrusted(eb, token)))
        .where((eb) => eb.exists(loginLive(eb, token)))
        .executeTakeFirst();
      if (Number(spent.numUpdatedRows) !== 1) return false;
      if (known !== undefined) {
        // The same host (same key) enrolled again in its account: a reinstall keeps its id.
        await trx
          .updateTable('hosts')
          .set((eb) => ({
            name: params.host.name,
            cert_fingerprint: params.host.cert_fingerprint,
            enrolled_by: token.device_id,
            presence_version: eb('presence_version', '+', 1),
          }))
          .where('id', '=', hostId)
          .execute();
      } else {
        await trx
          .insertInto('hosts')
          .values({
            id: hostId,
            account_id: token.account_id,
            public_key: params.host.public_key,
            cert_fingerprint: params.host.cert_fingerprint,
            name: params.host.name,
            enrolled_at: now,
            enrolled_by: token.device_id,
            online: 0,
            replica_id: null,
            connection_id: null,
            last_seen: null,
            record_json: null,
            record_signature: null,
            presence_version: 1,
            vouches_json: null,
          })
          .execute();
      }
      return true;
    });
    if (!claimed) {
      throw await refuse(
        (await makerRefusal(ctx.db, token)) ??
          new HangarError('E_TOKEN_USED', `this enrollment token was already used (each works once); ${MAKE_ANOTHER}`),
        token.account_id,
      );
    }
    ctx.metrics.enrollments.inc({ outcome: 'ok' });
    await ctx.audit.record(auditContext(call, token.account_id, `host:${hostId}`), 'host.enrolled', {
      host_id: hostId,
      name: params.host.name,
      token_id: token.id,
      token_made_by: token.device_id,
      reenrolled: known !== undefined,
    });
    await publishHost(ctx, hostId);
    return { host_id: hostId, account_id: token.account_id, entitlement_key: ctx.billing.entitlementKey };
  },

  async 'hosts.list'(ctx, _params, call) {
    const rows = await accountRows(ctx.db, 'hosts', signedIn(call).account_id, 'name');
    return { hosts: rows.map(hostPresence) };
  },

  /**
   * Keeps a device's statement that a host has its key beside the host's record (PROTOCOL.md "Hosts
   * enrolled later"): checked for form (this account, this host's key, signed by the caller), one
   * per signer. Other computers verify it against the device keys they trust; the relay cannot make one.
   */
  async 'hosts.vouch'(ctx, params, call) {
    const device = signedIn(call);
    const statement = params.statement;
    const host = await ctx.db
      .selectFrom('hosts')
      .selectAll()
      .where('id', '=', params.host_id)
      .where('account_id', '=', device.account_id)
      .executeTakeFirst();
    if (host === undefined) {
      throw new HangarError('E_NOT_FOUND', `no host ${params.host_id} in this account (hosts.list shows them)`);
    }
    if (statement.account_id !== device.account_id || statement.host_key !== host.public_key) {
      throw new HangarError('E_BAD_REQUEST', 'statement: not about this host of this account');
    }
    if (statement.signer_device_key !== device.public_key || !verifyHostStatement(statement)) {
      throw new HangarError(
        'E_AUTH_BAD_SIGNATURE',
        'statement.signature: not signed by this device (hostStatementBytes)',
      );
    }
    const kept = host.vouches_json === null ? [] : z.array(HostStatement).parse(JSON.parse(host.vouches_json));
    const vouches = [...kept.filter((v) => v.signer_device_key !== device.public_key), statement].slice(-16);
    await ctx.db
      .updateTable('hosts')
      .set((eb) => ({ vouches_json: JSON.stringify(vouches), presence_version: eb('presence_version', '+', 1) }))
      .where('id', '=', host.id)
      .execute();
    await ctx.audit.record(auditContext(call, device.account_id), 'host.vouched', { host_id: host.id });
    await publishHost(ctx, host.id);
    return {};
  },

  async 'hosts.remove'(ctx, params, call) {
    const device = signedIn(call);
    const removed = await ctx.db
      .deleteFrom('hosts')
      .where('id', '=', params.host_id)
      .where('account_id', '=', device.account_id)
      .executeTakeFirst();
    if (Number(removed.numDeletedRows) !== 1) {
      throw new HangarError('E_NOT_FOUND', `no host ${params.host_id} in this account (hosts.list shows them)`);
    }
    await ctx.audit.record(auditContext(call, device.account_id), 'host.removed', { host_id: params.host_id });
    await ctx.bus.publish({ t: 'host.removed', account_id: device.account_id, host_id: params.host_id });
    return {};
  },
};

/** Tells every replica's device sockets of the account what a host looks like now. */
export async function publishHost(ctx: RelayContext, hostId: string): Promise<void> {
  const row = await ctx.db.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirst();
  if (row === undefined) return;
  await ctx.bus.publish({
    t: 'presence',
    account_id: row.account_id,
    version: row.presence_version,
    host: hostPresence(row),
  });
}
