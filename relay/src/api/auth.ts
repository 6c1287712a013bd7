import { HangarError, oidcIdentity, type LoginResult, type RelayParams, type SessionTokens } from '@hangar/shared';
import type { LoginSource } from '../accounts/login-throttle.js';
import { burnPasswordTime, hashPassword, verifyPassword } from '../accounts/passwords.js';
import { REFRESH_TOKEN_TTL_MS, newId, newRefreshToken, sha256Hex } from '../accounts/tokens.js';
import { deviceView, type DeviceRow, type RelayContext } from '../context.js';
import type { RelayDb } from '../store/db.js';
import type { RelayTables } from '../store/schema.js';
import { auditContext, checkLoginProof, isTrusted, isUniqueViolation, type Call, type Handlers } from './call.js';
import { insertOwner, isMember, memberLogin } from './members.js';

type Registration = { public_key: string; name: string };
type AccountRow = RelayTables['accounts'];

export const BAD_CREDENTIALS = 'email or password is wrong (or the account does not exist); check them and try again';

export const authHandlers: Pick<Handlers, 'auth.signup' | 'auth.login' | 'auth.oidc' | 'auth.refresh' | 'auth.logout'> =
  {
    async 'auth.signup'(ctx, params, call) {
      ctx.limits.take('signup', call.ip, 'sign-ups from this address');
      checkLoginProof(ctx, call, { identity: params.email, publicKey: params.device.public_key, proof: params.proof });
      const existing = await ctx.db
        .selectFrom('accounts')
        .select('id')
        .where('email', '=', params.email)
        .executeTakeFirst();
      if (existing !== undefined || (await isMember(ctx, params.email))) throw accountExists(params.email);
      const passwordHash = await hashPassword(params.password, ctx.passwordCost);
      const account = { email: params.email, password_hash: passwordHash, oidc_issuer: null, oidc_subject: null };
      return createAccount(ctx, call, account, params.device, 'signup');
    },

    async 'auth.login'(ctx, params, call) {
      // Read once: the throttle asks whose key this is, the password check needs the same row.
      const account = await ctx.db
        .selectFrom('accounts')
        .selectAll()
        .where('email', '=', params.email)
        .executeTakeFirst();
      const claimsTrustedKey = await isTrustedKey(ctx, params.email, params.device.public_key, account);
      // The proof shows this request holds the device key, so a key the account trusts can be told
      // apart from anyone else who knows the email (login-throttle.ts). Each is a signature check,
      // the dearest thing an anonymous request makes: one that fails is charged to the address,
      // and past that budget only a key the account trusts is checked at all.
      const badProofs = 'sign-ins with a proof that does not verify from this address';
      if (!claimsTrustedKey) ctx.limits.check('badProof', call.ip, badProofs);
      try {
        checkLoginProof(ctx, call, {
          identity: params.email,
          publicKey: params.device.public_key,
          proof: params.proof,
        });
      } catch (error) {
        ctx.limits.spend('badProof', call.ip);
        throw error;
      }
      const source: LoginSource = claimsTrustedKey
        ? { email: params.email, trustedKey: params.device.public_key }
        : { email: params.email, address: call.ip };
      if ('address' in source) ctx.limits.take('login', call.ip, 'sign-in attempts from this address');
      ctx.loginThrottle.check(source);
      let result: LoginResult;
      try {
        result = await passwordLogin(ctx, call, params, account);
      } catch (error) {
        if (error instanceof HangarError && error.code === 'E_AUTH_BAD_CREDENTIALS') ctx.loginThrottle.failed(source);
        throw error;
      }
      ctx.loginThrottle.succeeded(source);
      return result;
    },

    async 'auth.oidc'(ctx, params, call) {
      ctx.limits.take('login', call.ip, 'sign-in attempts from this address');
      if (ctx.oidc === undefined) {
        throw new HangarError(
          'E_AUTH_OIDC',
          'this relay has no OpenID Connect sign-in (it runs without --oidc-issuer)',
        );
      }
      checkLoginProof(ctx, call, {
        identity: oidcIdentity(params.id_token),
        publicKey: params.device.public_key,
        proof: params.proof,
      });
      const identity = await ctx.oidc.verify(params.id_token);
      const bySubject = await ctx.db
        .selectFrom('accounts')
        .select(['id', 'email'])
        .where('oidc_issuer', '=', identity.issuer)
        .where('oidc_subject', '=', identity.subject)
        .executeTakeFirst();
      if (bySubject !== undefined) {
        return signIn(ctx, call, { account_id: bySubject.id, email: bySubject.email }, params.device, 'oidc');
      }
      const byEmail = await ctx.db
        .selectFrom('accounts')
        .selectAll()
        .where('email', '=', identity.email)
        .executeTakeFirst();
      if (byEmail !== undefined) {
        if (byEmail.oidc_subject !== null) {
          throw new HangarError('E_AUTH_OIDC', `${identity.email} is linked to another identity at the provider`);
        }
        // The operator trusts this issuer (--oidc-issuer) and it verified the email: link them.
        await ctx.db
          .updateTable('accounts')
          .set({ oidc_issuer: identity.issuer, oidc_subject: identity.subject })
          .where('id', '=', byEmail.id)
          .execute();
        await ctx.audit.record(auditContext(call, byEmail.id), 'account.oidc_linked', { issuer: identity.issuer });
        return signIn(ctx, call, { account_id: byEmail.id, email: byEmail.email }, params.device, 'oidc');
      }
      const account = {
        email: identity.email,
        password_hash: null,
        oidc_issuer: identity.issuer,
        oidc_subject: identity.subject,
      };
      return createAccount(ctx, call, account, params.device, 'oidc-signup');
    },

    async 'auth.refresh'(ctx, params, call) {
      ctx.limits.take('refresh', call.ip, 'token refreshes from this address');
      const hash = sha256Hex(params.refresh_token);
      const row = await ctx.db
        .selectFrom('refresh_tokens')
        .selectAll()
        .where('token_hash', '=', hash)
        .executeTakeFirst();
      if (row === undefined)
        throw new HangarError('E_AUTH_REQUIRED', 'this refresh token is unknown here; log in again');
      const now = ctx.now();
      if (row.used_at !== null) {
        // A spent token came back: either it was stolen or the client lost track. Either way, end
        // every token of this login so the thief's copy is worthless, and say so in the audit log.
        await ctx.db
          .updateTable('refresh_tokens')
          .set({ revoked_at: now })
          .where('family_id', '=', row.family_id)
          .where('revoked_at', 'is', null)
          .execute();
        await endedSession(ctx, row);
        await ctx.audit.record(auditContext(call, row.account_id, `device:${row.device_id}`), 'auth.refresh_reused', {
          device_id: row.device_id,
        });
        throw new HangarError(
          'E_AUTH_REFRESH_REUSED',
          'this refresh token was already used once; the session was ended to be safe: log in again',
        );
      }
      const device = await ctx.db
        .selectFrom('devices')
        .selectAll()
        .where('id', '=', row.device_id)
        .executeTakeFirstOrThrow();
      if (device.status === 'revoked') throw revoked(device);
      if (row.revoked_at !== null)
        throw new HangarError('E_AUTH_REQUIRED', 'this session was ended (logout); log in again');
      if (row.expires_at <= now) throw new HangarError('E_AUTH_REQUIRED', 'this session expired; log in again');
      const next = newRefreshToken();
      const spent = await ctx.db.transaction().execute(async (trx) => {
        const used = await trx
          .updateTable('refresh_tokens')
          .set({ used_at: now })
          .where('id', '=', row.id)
          .where('used_at', 'is', null)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        if (Number(used.numUpdatedRows) !== 1) return false;
        await trx
          .insertInto('refresh_tokens')
          .values({
            id: newId('rt'),
            family_id: row.family_id,
            account_id: row.account_id,
            device_id: row.device_id,
            token_hash: next.hash,
            created_at: now,
            expires_at: now + REFRESH_TOKEN_TTL_MS,
            used_at: null,
            revoked_at: null,
          })
          .execute();
        return true;
      });
      if (!spent)
        throw new HangarError('E_AUTH_REFRESH_REUSED', 'this refresh token was used concurrently; log in again');
      await ctx.db.updateTable('devices').set({ last_seen: now }).where('id', '=', device.id).execute();
      const access = await ctx.accessTokens.issue(row.account_id, row.device_id, row.family_id);
      return {
        access_token: access.token,
        access_expires_at: access.expiresAt,
        refresh_token: next.token,
        refresh_expires_at: now + REFRESH_TOKEN_TTL_MS,
      };
    },

    async 'auth.logout'(ctx, params, call) {
      ctx.limits.take('refresh', call.ip, 'token refreshes and logouts from this address');
      const row = await ctx.db
        .selectFrom('refresh_tokens')
        .select(['family_id', 'account_id', 'device_id'])
        .where('token_hash', '=', sha256Hex(params.refresh_token))
        .executeTakeFirst();
      // Logging out twice, or with a token already gone, leaves the same state: nothing to do.
      if (row === undefined) return {};
      await ctx.db
        .updateTable('refresh_tokens')
        .set({ revoked_at: ctx.now() })
        .where('family_id', '=', row.family_id)
        .where('revoked_at', 'is', null)
        .execute();
      await endedSession(ctx, row);
      await ctx.audit.record(auditContext(call, row.account_id, `device:${row.device_id}`), 'auth.logout', {
        device_id: row.device_id,
      });
      return {};
    },
  };

/**
 * A login's refresh tokens were just revoked: its access tokens are refused from now on (they
 * name it, and authenticate checks it is live) and every replica closes its device sockets.
 */
async function endedSession(ctx: RelayContext, row: { family_id: string; device_id: string }): Promise<void> {
  await ctx.bus.publish({ t: 'session.ended', device_id: row.device_id, session_id: row.family_id });
}

async function passwordLogin(
  ctx: RelayContext,
  call: Call,
  params: RelayParams<'auth.login'>,
  account: AccountRow | undefined,
): Promise<LoginResult> {
  if (account === undefined) return memberLogin(ctx, call, params);
  if (account.password_hash === null) {
    await burnPasswordTime(params.password, ctx.passwordCost);
    ctx.metrics.logins.inc({ method: 'password', outcome: 'refused' });
    throw new HangarError('E_AUTH_BAD_CREDENTIALS', BAD_CREDENTIALS);
  }
  if (!(await verifyPassword(params.password, account.password_hash))) {
    ctx.metrics.logins.inc({ method: 'password', outcome: 'refused' });
    await ctx.audit.record(auditContext(call, account.id), 'auth.login_refused', { reason: 'wrong password' });
    throw new HangarError('E_AUTH_BAD_CREDENTIALS', BAD_CREDENTIALS);
  }
  return signIn(ctx, call, { account_id: account.id, email: account.email }, params.device, 'password');
}

/**
 * `publicKey` is a device the account of `email` (its owner's: `owner`, the accounts row of that
 * email, read by the caller; or the member's with that email) already trusts: first or endorsed,
 * and that person's.
 */
async function isTrustedKey(
  ctx: RelayContext,
  email: string,
  publicKey: string,
  owner: AccountRow | undefined,
): Promise<boolean> {
  const member =
    owner === undefined
      ? await ctx.db
          .selectFrom('account_members')
          .select('account_id')
          .where('email', '=', email)
          .where('role', '=', 'member')
          .where('joined_at', 'is not', null)
          .executeTakeFirst()
      : undefined;
  const accountId = owner?.id ?? member?.account_id;
  if (accountId === undefined) return false;
  const device = await ctx.db
    .selectFrom('devices')
    .select(['status', 'member_email'])
    .where('account_id', '=', accountId)
    .where('public_key', '=', publicKey)
    .executeTakeFirst();
  if (device === undefined || !isTrusted(device)) return false;
  return owner !== undefined ? device.member_email === null : device.member_email === email;
}

/** A new account with its owner and first device, signed in on that device. */
async function createAccount(
  ctx: RelayContext,
  call: Call,
  account: { email: string; password_hash: string | null; oidc_issuer: string | null; oidc_subject: string | null },
  registration: Registration,
  method: 'signup' | 'oidc-signup',
): Promise<LoginResult> {
  const accountId = newId('acct');
  let device: DeviceRow;
  try {
    device = await ctx.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('accounts')
        .values({ id: accountId, ...account, statement_seq: 0, created_at: ctx.now() })
        .execute();
      await insertOwner(trx, accountId, account.email, ctx.now());
      return insertDevice(trx, ctx, accountId, registration, 'first');
    });
  } catch (error) {
    // Another sign-up for the same email got there first.
    if (isUniqueViolation(error)) throw accountExists(account.email);
    throw error;
  }
  ctx.metrics.logins.inc({ method, outcome: 'ok' });
  await ctx.audit.record(auditContext(call, accountId, `device:${device.id}`), 'account.signup', {
    email: account.email,
    ...(account.oidc_issuer !== null ? { issuer: account.oidc_issuer } : {}),
    device_id: device.id,
    device_name: device.name,
  });
  return session(ctx, { account_id: accountId, email: account.email }, device);
}

function accountExists(email: string): HangarError {
  return new HangarError('E_EXISTS', `an account for ${email} already exists; log in instead (hangar login)`);
}

function revoked(device: DeviceRow): HangarError {
  return new HangarError(
    'E_AUTH_DEVICE_REVOKED',
    `this device (${device.name}) was revoked on this account; it cannot sign in again with the same key`,
  );
}

/**
 * Computers an account may have waiting for approval at once. Each is offered to every trusted
 * device (a prompt in the window), so someone who learnt the password cannot flood them; the
 * owner approves or revokes some to make room.
 */
export const MAX_PENDING_DEVICES = 16;

/** What the one refused does next: a computer signing in has the account's trusted ones; an invitee has none. */
const MAKE_ROOM = {
  login: 'on a computer it trusts, approve or revoke them (hangar devices ls), then sign in again',
  invite:
    "ask the account's owner to approve or revoke them (hangar devices ls on a computer the account trusts), " +
    'then accept the invitation again (it stays valid)',
} as const;

/** E_FORBIDDEN saying what to do when the account already has MAX_PENDING_DEVICES waiting. */
export async function refuseIfTooManyWaiting(
  db: RelayDb,
  accountId: string,
  who: keyof typeof MAKE_ROOM = 'login',
): Promise<void> {
  const { count } = await db
    .selectFrom('devices')
    .select((eb) => eb.fn.countAll<number | string>().as('count'))
    .where('account_id', '=', accountId)
    .where('status', '=', 'pending')
    .executeTakeFirstOrThrow();
  if (Number(count) >= MAX_PENDING_DEVICES) {
    throw new HangarError(
      'E_FORBIDDEN',
      `this account already has ${MAX_PENDING_DEVICES} computers waiting for approval, the most it may; ${MAKE_ROOM[who]}`,
    );
  }
}

export async function insertDevice(
  db: RelayDb, // a transaction is one too
  ctx: RelayContext,
  accountId: string,
  registration: Registration,
  status: 'first' | 'pending',
  memberEmail: string | null = null,
): Promise<DeviceRow> {
  const row: DeviceRow = {
    id: newId('dev'),
    account_id: accountId,
    public_key: registration.public_key,
    name: registration.name,
    status,
    created_at: ctx.now(),
    last_seen: ctx.now(),
    endorsed_by: null,
    revoked_by: null,
    member_email: memberEmail,
  };
  await db.insertInto('devices').values(row).execute();
  return row;
}

/** A known device key signs in again; a new one joins the account as pending. */
export async function signIn(
  ctx: RelayContext,
  call: Call,
  account: { account_id: string; email: string },
  registration: Registration,
  method: 'password' | 'oidc',
  memberEmail: string | null = null,
): Promise<LoginResult> {
  // A member's device and session are made in one transaction with a read of their membership,
  // locked (as account.remove_member locks it first): a removal that committed since the password
  // was checked refuses this login, and one that comes after sees (and deletes) the device made.
  const { device, isNew, result } =
    memberEmail === null
      ? await deviceAndSession(ctx, ctx.db, account, registration, method, null)
      : await ctx.db.transaction().execute(async (trx) => {
          if (!(await lockMembership(ctx, trx, account.account_id, memberEmail))) {
            ctx.metrics.logins.inc({ method, outcome: 'refused' });
            throw new HangarError('E_AUTH_BAD_CREDENTIALS', BAD_CREDENTIALS);
          }
          return deviceAndSession(ctx, trx, account, registration, method, memberEmail);
        });
  ctx.metrics.logins.inc({ method, outcome: 'ok' });
  await ctx.audit.record(auditContext(call, account.account_id, `device:${device.id}`), 'auth.login', {
    method,
    device_id: device.id,
    device_name: device.name,
    new_device: isNew,
  });
  if (isNew) await ctx.bus.publish({ t: 'device.pending', account_id: account.account_id, device: deviceView(device) });
  return result;
}

/**
 * Whether `email` is still a member who joined `accountId`, locking that row until the transaction
 * ends on Postgres (SQLite runs one transaction at a time): what a member's sign-in and the
 * member's removal both read first, so one of them sees the other's result.
 */
export async function lockMembership(ctx: RelayContext, trx: RelayDb, accountId: string, email: string) {
  const row = await trx
    .selectFrom('account_members')
    .select('email')
    .where('account_id', '=', accountId)
    .where('email', '=', email)
    .where('joined_at', 'is not', null)
    .$if(ctx.dialect === 'postgres', (q) => q.forUpdate())
    .executeTakeFirst();
  return row !== undefined;
}

/** A known device key signs in again (its name and last_seen updated), or a new one joins as pending; then its session. */
async function deviceAndSession(
  ctx: RelayContext,
  db: RelayDb, // a transaction for a member's
  account: { account_id: string; email: string },
  registration: Registration,
  method: 'password' | 'oidc',
  memberEmail: string | null,
): Promise<{ device: DeviceRow; isNew: boolean; result: LoginResult }> {
  let device = await db
    .selectFrom('devices')
    .selectAll()
    .where('account_id', '=', account.account_id)
    .where('public_key', '=', registration.public_key)
    .executeTakeFirst();
  const isNew = device === undefined;
  if (device === undefined) {
    await refuseIfTooManyWaiting(db, account.account_id);
    try {
      device = await insertDevice(db, ctx, account.account_id, registration, 'pending', memberEmail);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      // The same device signed in twice at once; the other request made the row. (In a member's
      // transaction the failed insert ended it on Postgres: that sign-in is asked to try again.)
      if (db !== ctx.db && ctx.dialect === 'postgres') {
        throw new HangarError('E_UNAVAILABLE', 'this device signed in twice at once; sign in again');
      }
      device = await db
        .selectFrom('devices')
        .selectAll()
        .where('account_id', '=', account.account_id)
        .where('public_key', '=', registration.public_key)
        .executeTakeFirstOrThrow();
    }
  } else {
    if (device.member_email !== memberEmail) {
      // One key, one person: a member cannot sign in on the owner's (or another member's) device key.
      ctx.metrics.logins.inc({ method, outcome: 'refused' });
      throw new HangarError(
        'E_FORBIDDEN',
        'this device key belongs to another person of the account; sign in on your own device',
      );
    }
    if (device.status === 'revoked') {
      ctx.metrics.logins.inc({ method, outcome: 'refused' });
      throw revoked(device);
    }
    await db
      .updateTable('devices')
      .set({ name: registration.name, last_seen: ctx.now() })
      .where('id', '=', device.id)
      .execute();
    device = { ...device, name: registration.name, last_seen: ctx.now() };
  }
  return { device, isNew, result: await session(ctx, account, device, db) };
}

export async function session(
  ctx: RelayContext,
  account: { account_id: string; email: string },
  device: DeviceRow,
  db: RelayDb = ctx.db, // a transaction where the device was made in one
): Promise<LoginResult> {
  const now = ctx.now();
  const refresh = newRefreshToken();
  const familyId = newId('fam');
  await db
    .insertInto('refresh_tokens')
    .values({
      id: newId('rt'),
      family_id: familyId,
      account_id: account.account_id,
      device_id: device.id,
      token_hash: refresh.hash,
      created_at: now,
      expires_at: now + REFRESH_TOKEN_TTL_MS,
      used_at: null,
      revoked_at: null,
    })
    .execute();
  const access = await ctx.accessTokens.issue(account.account_id, device.id, familyId);
  const tokens: SessionTokens = {
    access_token: access.token,
    access_expires_at: access.expiresAt,
    refresh_token: refresh.token,
    refresh_expires_at: now + REFRESH_TOKEN_TTL_MS,
  };
  return { ...tokens, account, device: deviceView(device) };
}
