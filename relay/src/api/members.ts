import { randomBytes, timingSafeEqual } from 'node:crypto';
import { HangarError, type LoginResult, type RelayParams } from '@hangar/shared';
import { burnPasswordTime, hashPassword, verifyPassword } from '../accounts/passwords.js';
import { sha256Hex } from '../accounts/tokens.js';
import { deviceView, type DeviceRow, type RelayContext } from '../context.js';
import type { RelayDb } from '../store/db.js';
import { BAD_CREDENTIALS, insertDevice, lockMembership, refuseIfTooManyWaiting, session, signIn } from './auth.js';
import { auditContext, checkLoginProof, signedIn, type Call, type Handlers } from './call.js';
import { accountRows } from '../store/account-rows.js';
import { checkStatement, storeStatement } from './devices.js';

/** An invitation can be accepted for this long. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60_000;

/** At most this many invitations wait at once in an account (each is a live secret). */
export const MAX_OUTSTANDING_INVITES = 50;

/**
 * Team accounts: several people in one account. The owner invites by email (the relay sends no
 * mail: the invitation token reaches the person as the owner chooses); the person accepts with
 * their own password and device, which joins as pending like any new device until a trusted
 * device approves it; members then sign in with auth.login. Each device records whose it is
 * (devices.member_email), so the audit log says which person did what. Only the owner buys,
 * manages billing and invites.
 */
export const memberHandlers: Pick<
  Handlers,
  | 'account.invite'
  | 'account.accept_invite'
  | 'account.members'
  | 'account.invites'
  | 'account.withdraw_invite'
  | 'account.remove_member'
> = {
  async 'account.invite'(ctx, params, call) {
    const device = ownerOnly(call, 'inviting people');
    await requireTeam(
      ctx,
      device.account_id,
      'several people in one account needs the Team plan: hangar account upgrade team',
    );
    await refuseIfInAnAccount(ctx, params.email);
    const now = ctx.now();
    const waiting = await outstandingInvites(ctx, device.account_id, now);
    if (waiting.length >= MAX_OUTSTANDING_INVITES && !waiting.some((row) => row.email === params.email)) {
      throw new HangarError(
        'E_RATE_LIMITED',
        `${MAX_OUTSTANDING_INVITES} invitations of this account are waiting to be accepted, the most there may be: ` +
          'withdraw those no one will accept (hangar team ls lists them; hangar team withdraw <email>), or wait for them to expire (7 days)',
      );
    }
    const token = `inv1_${randomBytes(32).toString('base64url')}`;
    const expiresAt = now + INVITE_TTL_MS;
    const invite = {
      role: 'member',
      invite_hash: sha256Hex(token),
      invited_by: device.id,
      invited_at: now,
      invite_expires_at: expiresAt,
    };
    // Inviting the same email again replaces the earlier invitation (its token stops working).
    await ctx.db
      .insertInto('account_members')
      .values({ account_id: device.account_id, email: params.email, password_hash: null, joined_at: null, ...invite })
      .onConflict((oc) =>
        oc.columns(['account_id', 'email']).doUpdateSet(invite).where('account_members.joined_at', 'is', null),
      )
      .execute();
    await ctx.audit.record(auditContext(call, device.account_id), 'member.invited', { email: params.email });
    return { email: params.email, invite_token: token, expires_at: expiresAt };
  },

  async 'account.accept_invite'(ctx, params, call) {
    ctx.limits.take('signup', call.ip, 'sign-ups from this address');
    checkLoginProof(ctx, call, { identity: params.email, publicKey: params.device.public_key, proof: params.proof });
    const row = await ctx.db
      .selectFrom('account_members')
      .selectAll()
      .where('invite_hash', '=', sha256Hex(params.invite_token))
      .executeTakeFirst();
    const invalid = new HangarError(
      'E_TOKEN_INVALID',
      'this invitation is not valid here (for this email); ask the owner for a new one',
    );
    if (row === undefined || !sameText(row.email, params.email)) throw invalid;
    if (row.joined_at !== null)
      throw new HangarError('E_TOKEN_USED', 'this invitation was already accepted; sign in instead');
    if ((row.invite_expires_at ?? 0) <= ctx.now()) {
      throw new HangarError(
        'E_TOKEN_EXPIRED',
        'this invitation expired (they last 7 days); ask the owner for a new one',
      );
    }
    // Made on Team, accepted later: the account must still be on it (else a lapsed or cancelled
    // Team account keeps letting people in for the invitations' 7 days).
    await requireTeam(
      ctx,
      row.account_id,
      'this account is not on the Team plan any more, so it takes no new people; ask its owner to renew it',
    );
    await refuseIfInAnAccount(ctx, params.email);
    await refuseIfTooManyWaiting(ctx.db, row.account_id, 'invite');
    const passwordHash = await hashPassword(params.password, ctx.passwordCost);
    const device = await ctx.db.transaction().execute(async (trx) => {
      const joined = await trx
        .updateTable('account_members')
        .set({ password_hash: passwordHash, joined_at: ctx.now(), invite_hash: null })
        .where('account_id', '=', row.account_id)
        .where('email', '=', row.email)
        .where('joined_at', 'is', null)
        .executeTakeFirst();
      if (Number(joined.numUpdatedRows) !== 1) return undefined;
      return insertDevice(trx, ctx, row.account_id, params.device, 'pending', row.email);
    });
    if (device === undefined)
      throw new HangarError('E_TOKEN_USED', 'this invitation was already accepted; sign in instead');
    await ctx.audit.record(auditContext(call, row.account_id, `device:${device.id}`), 'member.joined', {
      email: row.email,
      device_id: device.id,
      device_name: device.name,
    });
    await ctx.bus.publish({ t: 'device.pending', account_id: row.account_id, device: deviceView(device) });
    return session(ctx, { account_id: row.account_id, email: row.email }, device);
  },

  async 'account.invites'(ctx, _params, call) {
    const device = ownerOnly(call, 'listing invitations');
    const rows = await outstandingInvites(ctx, device.account_id, ctx.now());
    return {
      invites: rows.map((row) => ({
        email: row.email,
        invited_at: row.invited_at,
        expires_at: row.invite_expires_at!,
      })),
    };
  },

  async 'account.withdraw_invite'(ctx, params, call) {
    const device = ownerOnly(call, 'withdrawing invitations');
    const gone = await ctx.db
      .deleteFrom('account_members')
      .where('account_id', '=', device.account_id)
      .where('email', '=', params.email)
      .where('role', '=', 'member')
      .where('joined_at', 'is', null)
      .executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) {
      throw new HangarError(
        'E_NOT_FOUND',
        `no invitation for ${params.email} waits in this account (hangar team ls lists them; a member who joined is removed with hangar team rm)`,
      );
    }
    await ctx.audit.record(auditContext(call, device.account_id), 'member.invite_withdrawn', { email: params.email });
    return {};
  },

  async 'account.remove_member'(ctx, params, call) {
    const owner = ownerOnly(call, 'removing people');
    const account = await ctx.db
      .selectFrom('accounts')
      .select(['id', 'email'])
      .where('id', '=', owner.account_id)
      .executeTakeFirstOrThrow();
    if (params.email === account.email) {
      throw new HangarError(
        'E_FORBIDDEN',
        'the owner cannot remove themself: an account keeps its owner (delete what you no longer need, or revoke a device with hangar devices revoke)',
      );
    }
    const member = await ctx.db
      .selectFrom('account_members')
      .selectAll()
      .where('account_id', '=', owner.account_id)
      .where('email', '=', params.email)
      .where('role', '=', 'member')
      .where('joined_at', 'is not', null)
      .executeTakeFirst();
    if (member === undefined) {
      throw new HangarError(
        'E_NOT_FOUND',
        `${params.email} is not a member of this account (hangar team ls lists them; an invitation is withdrawn with hangar team withdraw)`,
      );
    }
    const theirs = await ctx.db
      .selectFrom('devices')
      .selectAll()
      .where('account_id', '=', owner.account_id)
      .where('member_email', '=', member.email)
      .execute();
    // Every revocation is checked before any is stored: a bad one changes nothing.
    for (const revocation of params.revocations) {
      if (!theirs.some((d) => d.id === revocation.device_id)) {
        throw new HangarError(
          'E_BAD_REQUEST',
          `revocations: device ${revocation.device_id} is not a device of ${member.email}; nothing was changed`,
        );
      }
      await checkStatement(ctx, owner, 'revoke', revocation.device_id, revocation.statement);
    }
    const reason = `you are no longer a member of ${account.email}'s Hangar account (its owner removed you)`;
    for (const revocation of params.revocations) {
      await storeStatement(ctx, call, 'revoke', revocation.device_id, revocation.statement, reason);
    }
    // The relay holds no trust: it cannot revoke a key, only require that the owner's device did.
    // A device ever approved (endorsed by a statement, or a root) may be pinned by hosts, so it must
    // be revoked; one never approved was never trusted anywhere through the relay and is deleted.
    // Read in the transaction that removes them, so a device approved meanwhile is not deleted unrevoked.
    const { revoked, deleted } = await ctx.db.transaction().execute(async (trx) => {
      // Locked first, as a member's sign-in locks it: a sign-in that made a device before this
      // commits is seen below (and its device deleted); one after is refused (auth.ts signIn).
      if (!(await lockMembership(ctx, trx, owner.account_id, member.email))) {
        throw new HangarError(
          'E_NOT_FOUND',
          `${member.email} is not a member of this account any more (removed meanwhile)`,
        );
      }
      const now = await trx
        .selectFrom('devices')
        .selectAll()
        .where('account_id', '=', owner.account_id)
        .where('member_email', '=', member.email)
        .execute();
      const live = now.filter((d) => d.status !== 'revoked');
      const endorsed = new Set(
        live.length === 0
          ? []
          : (
              await trx
                .selectFrom('statements')
                .select('subject_device_id')
                .where('account_id', '=', owner.account_id)
                .where('kind', '=', 'endorse')
                .where(
                  'subject_device_id',
                  'in',
                  live.map((d) => d.id),
                )
                .execute()
            ).map((row) => row.subject_device_id),
      );
      const open = live.filter((d) => d.status !== 'pending' || endorsed.has(d.id));
      if (open.length > 0) {
        throw new HangarError(
          'E_FORBIDDEN',
          `${member.email} still has devices the account approved: ${open.map((d) => `${d.name} (${d.id})`).join(', ')}. ` +
            'Each must be revoked by a statement this device signs (hangar team rm does it); the member was not removed',
          { devices: open.map((d) => d.id) },
        );
      }
      const ids = live.map((d) => d.id);
      if (ids.length > 0) {
        await trx.deleteFrom('refresh_tokens').where('device_id', 'in', ids).execute();
        await trx.deleteFrom('device_approvals').where('device_id', 'in', ids).execute();
        await trx.deleteFrom('devices').where('id', 'in', ids).execute();
      }
      // A revocation ended the revoked ones' logins already; this ends any left.
      if (now.length > 0) {
        await trx
          .updateTable('refresh_tokens')
          .set({ revoked_at: ctx.now() })
          .where(
            'device_id',
            'in',
            now.map((d) => d.id),
          )
          .where('revoked_at', 'is', null)
          .execute();
      }
      await trx
        .deleteFrom('account_members')
        .where('account_id', '=', owner.account_id)
        .where('email', '=', member.email)
        .execute();
      return { revoked: now.filter((d) => d.status === 'revoked'), deleted: live };
    });
    const named = (rows: DeviceRow[]) => rows.map((d) => ({ device_id: d.id, name: d.name }));
    await ctx.audit.record(auditContext(call, owner.account_id), 'member.removed', {
      email: member.email,
      revoked: revoked.map((d) => d.name),
      deleted: deleted.map((d) => d.name),
    });
    // Every socket and splice of theirs closes, saying why (a revoked one's closed already as it was revoked).
    for (const device of [...revoked, ...deleted]) {
      await ctx.bus.publish({ t: 'device.revoked', device_id: device.id, reason });
    }
    return { email: member.email, revoked: named(revoked), deleted: named(deleted) };
  },

  async 'account.members'(ctx, _params, call) {
    const rows = await accountRows(ctx.db, 'account_members', signedIn(call).account_id, 'invited_at');
    return {
      members: rows
        .map((row) => ({
          email: row.email,
          role: row.role === 'owner' ? ('owner' as const) : ('member' as const),
          status: row.joined_at === null ? ('invited' as const) : ('active' as const),
          invited_at: row.invited_at,
          joined_at: row.joined_at,
        }))
        .sort((a, b) => (a.role === b.role ? 0 : a.role === 'owner' ? -1 : 1)),
    };
  },
};

/** The account's owner as its first member row (at sign-up; migration 002 added existing owners). */
export async function insertOwner(db: RelayDb, accountId: string, email: string, now: number): Promise<void> {
  await db
    .insertInto('account_members')
    .values({
      account_id: accountId,
      email,
      role: 'owner',
      password_hash: null,
      invite_hash: null,
      invited_by: null,
      invited_at: null,
      invite_expires_at: null,
      joined_at: now,
    })
    .execute();
}

/** The calling device, when it is the owner's; E_FORBIDDEN for a member's (`what` is what they tried). */
function ownerOnly(call: Call, what: string): DeviceRow {
  const device = signedIn(call);
  if (device.member_email !== null) {
    throw new HangarError('E_FORBIDDEN', `${what} is for the account's owner; ask them (you are a member)`);
  }
  return device;
}

/** Invitations not accepted and not expired: what the owner sees and the cap counts. */
async function outstandingInvites(ctx: RelayContext, accountId: string, now: number) {
  return ctx.db
    .selectFrom('account_members')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('role', '=', 'member')
    .where('joined_at', 'is', null)
    .where('invite_expires_at', '>', now)
    .orderBy('invited_at')
    .execute();
}

/** E_PLAN_LIMIT with `message` unless the account is on Team (or billing is off: everything allowed). */
async function requireTeam(ctx: RelayContext, accountId: string, message: string): Promise<void> {
  const state = await ctx.billing.state(accountId);
  if (state.plan !== 'team' && state.plan !== 'unmetered') throw new HangarError('E_PLAN_LIMIT', message);
}

/** E_EXISTS if `email` owns an account or has joined one: a person is in one account. */
async function refuseIfInAnAccount(ctx: RelayContext, email: string): Promise<void> {
  const taken = await ctx.db.selectFrom('accounts').select('id').where('email', '=', email).executeTakeFirst();
  if (taken !== undefined || (await isMember(ctx, email))) {
    throw new HangarError('E_EXISTS', `${email} already has a Hangar account; a person can be in one account`);
  }
}

export async function isMember(ctx: RelayContext, email: string): Promise<boolean> {
  const row = await ctx.db
    .selectFrom('account_members')
    .select('account_id')
    .where('email', '=', email)
    .where('role', '=', 'member')
    .where('joined_at', 'is not', null)
    .executeTakeFirst();
  return row !== undefined;
}

/** auth.login for an email that is not an account's owner: a member's, else the same refusal as a wrong password. */
export async function memberLogin(
  ctx: RelayContext,
  call: Call,
  params: RelayParams<'auth.login'>,
): Promise<LoginResult> {
  const member = await ctx.db
    .selectFrom('account_members')
    .selectAll()
    .where('email', '=', params.email)
    .where('role', '=', 'member')
    .where('joined_at', 'is not', null)
    .executeTakeFirst();
  if (member?.password_hash == null) {
    // No such member (never one, or removed: the relay keeps no password of someone who left, so
    // they get the refusal anyone gets): a password check's time all the same.
    await burnPasswordTime(params.password, ctx.passwordCost);
    ctx.metrics.logins.inc({ method: 'password', outcome: 'refused' });
    throw new HangarError('E_AUTH_BAD_CREDENTIALS', BAD_CREDENTIALS);
  }
  if (!(await verifyPassword(params.password, member.password_hash))) {
    ctx.metrics.logins.inc({ method: 'password', outcome: 'refused' });
    await ctx.audit.record(auditContext(call, member.account_id), 'auth.login_refused', {
      reason: 'wrong password',
      email: member.email,
    });
    throw new HangarError('E_AUTH_BAD_CREDENTIALS', BAD_CREDENTIALS);
  }
  if (ctx.afterMemberPasswordCheck) await ctx.afterMemberPasswordCheck();
  return signIn(
    ctx,
    call,
    { account_id: member.account_id, email: member.email },
    params.device,
    'password',
    member.email,
  );
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
