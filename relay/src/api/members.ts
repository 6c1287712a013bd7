import { randomBytes, timingSafeEqual } from 'node:crypto';
import { HangarError, type LoginResult, type RelayParams } from '@hangar/shared';
import { burnPasswordTime, hashPassword, verifyPassword } from '../accounts/passwords.js';
import { sha256Hex } from '../accounts/tokens.js';
import { deviceView, type RelayContext } from '../context.js';
import type { RelayDb } from '../store/db.js';
import { BAD_CREDENTIALS, insertDevice, refuseIfTooManyWaiting, session, signIn } from './auth.js';
import { auditContext, checkLoginProof, signedIn, type Call, type Handlers } from './call.js';
import { accountRows } from '../store/account-rows.js';

/** An invitation can be accepted for this long. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60_000;

/**
 * Team accounts: several people in one account. The owner invites by email (the relay sends no
 * mail: the invitation token reaches the person as the owner chooses); the person accepts with
 * their own password and device, which joins as pending like any new device until a trusted
 * device approves it; members then sign in with auth.login. Each device records whose it is
 * (devices.member_email), so the audit log says which person did what. Only the owner buys,
 * manages billing and invites.
 */
export const memberHandlers: Pick<Handlers, 'account.invite' | 'account.accept_invite' | 'account.members'> = {
  async 'account.invite'(ctx, params, call) {
    const device = signedIn(call);
    if (device.member_email !== null) {
      throw new HangarError('E_FORBIDDEN', "inviting people is for the account's owner; ask them (you are a member)");
    }
    await requireTeam(
      ctx,
      device.account_id,
      'several people in one account needs the Team plan: hangar account upgrade team',
    );
    await refuseIfInAnAccount(ctx, params.email);
    const token = `inv1_${randomBytes(32).toString('base64url')}`;
    const now = ctx.now();
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

/** Someone who joined an account as a member (members sign in with their own email and password). */
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
