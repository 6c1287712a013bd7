import {
  ApprovalBundle,
  HangarError,
  LOGIN_PROOF_WINDOW_MS,
  jsonOrUndefined,
  verifyStatement,
  type Statement,
  type DeviceView,
  type StoredStatement,
} from '@hangar/shared';
import { deviceView, type DeviceRow, type RelayContext } from '../context.js';
import type { RelayDb } from '../store/db.js';
import type { RelayTables } from '../store/schema.js';
import { auditContext, isTrusted, signedIn, type Call, type Handlers } from './call.js';
import { accountRows } from '../store/account-rows.js';

/**
 * Devices and the statements about them. The relay checks a statement's form (right kind,
 * this account, about that device, signed by the calling device, which the account trusts),
 * stores it under the account's next seq and pushes it to the account's agents. It cannot
 * make one, and hosts verify each against the devices they pinned.
 */
export const deviceHandlers: Pick<
  Handlers,
  | 'devices.list'
  | 'devices.offer_tag'
  | 'devices.tag'
  | 'devices.endorse'
  | 'devices.bundle'
  | 'devices.revoke'
  | 'statements.list'
  | 'audit.list'
> = {
  async 'devices.list'(ctx, _params, call) {
    const device = signedIn(call);
    // A pending device sees itself only: enough to show its fingerprint and learn it was approved.
    if (!isTrusted(device)) return { devices: await withApprovalNotes(ctx, [device]), this_device: device.id };
    const rows = await accountRows(ctx.db, 'devices', device.account_id, 'created_at');
    return { devices: await withApprovalNotes(ctx, rows), this_device: device.id };
  },

  /*
   * The approval code's two halves (PROTOCOL.md "More devices: the approval code"): the relay keeps
   * and hands over a tag and a sealed bundle it can neither make nor open. It checks their form only.
   */
  async 'devices.offer_tag'(ctx, params, call) {
    const device = signedIn(call);
    if (device.status !== 'pending') {
      throw new HangarError('E_BAD_REQUEST', 'this device is not waiting for approval: it has no code to offer');
    }
    const now = ctx.now();
    await ctx.db
      .insertInto('device_approvals')
      .values({
        device_id: device.id,
        account_id: device.account_id,
        tag: params.tag,
        bundle_json: null,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('device_id').doUpdateSet({ tag: params.tag, updated_at: now }))
      .execute();
    return {};
  },

  async 'devices.tag'(ctx, params, call) {
    const device = signedIn(call);
    const subject = await ctx.db
      .selectFrom('devices')
      .leftJoin('device_approvals', 'device_approvals.device_id', 'devices.id')
      .select(['devices.public_key', 'device_approvals.tag'])
      .where('devices.id', '=', params.device_id)
      .where('devices.account_id', '=', device.account_id)
      .executeTakeFirst();
    if (subject === undefined) {
      throw new HangarError('E_NOT_FOUND', `no device ${params.device_id} in this account (devices.list shows them)`);
    }
    return { public_key: subject.public_key, tag: subject.tag ?? null };
  },

  async 'devices.endorse'(ctx, params, call) {
    const signer = signedIn(call);
    const bundle = params.bundle;
    if (bundle !== undefined) {
      if (
        bundle.account_id !== signer.account_id ||
        bundle.approver_device_key !== signer.public_key ||
        bundle.device_key !== params.statement.subject_device_key
      ) {
        throw new HangarError('E_BAD_REQUEST', 'bundle: not made by this device for the device it endorses');
      }
    }
    // Stored before the endorsement (once the statement is known to be good): a device that sees
    // itself approved finds its bundle there, never a moment without it.
    if (bundle !== undefined) {
      await checkStatement(ctx, signer, 'endorse', params.device_id, params.statement);
      const now = ctx.now();
      const json = JSON.stringify(bundle);
      await ctx.db
        .insertInto('device_approvals')
        .values({
          device_id: params.device_id,
          account_id: signer.account_id,
          tag: null,
          bundle_json: json,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('device_id').doUpdateSet({ bundle_json: json, updated_at: now }))
        .execute();
    }
    return { seq: await storeStatement(ctx, call, 'endorse', params.device_id, params.statement) };
  },

  async 'devices.bundle'(ctx, _params, call) {
    const device = signedIn(call);
    const row = await ctx.db
      .selectFrom('device_approvals')
      .select('bundle_json')
      .where('device_id', '=', device.id)
      .executeTakeFirst();
    const parsed = ApprovalBundle.safeParse(row?.bundle_json ? jsonOrUndefined(row.bundle_json) : undefined);
    return { bundle: parsed.success ? parsed.data : null };
  },

  async 'devices.revoke'(ctx, params, call) {
    return { seq: await storeStatement(ctx, call, 'revoke', params.device_id, params.statement) };
  },

  async 'statements.list'(ctx, params, call) {
    const device = signedIn(call);
    return { statements: await statementsSince(ctx, device.account_id, params.since) };
  },

  async 'audit.list'(ctx, params, call) {
    const device = signedIn(call);
    const entries = await ctx.audit.list({
      accountId: device.account_id,
      limit: params.limit,
      ...(params.before !== undefined ? { before: params.before } : {}),
    });
    return { entries };
  },
};

/**
 * The devices as listed, each pending one that was approved before (settleTrust took its approval
 * back) with why and what to do: the user must not believe it works while every host refuses it.
 */
async function withApprovalNotes(ctx: RelayContext, rows: DeviceRow[]): Promise<DeviceView[]> {
  const pending = rows.filter((row) => row.status === 'pending');
  if (pending.length === 0) return rows.map(deviceView);
  const accountId = pending[0]!.account_id;
  const endorsements = await ctx.db
    .selectFrom('statements')
    .select(['subject_device_id', 'signer_device_key'])
    .where('account_id', '=', accountId)
    .where('kind', '=', 'endorse')
    .where(
      'subject_device_id',
      'in',
      pending.map((row) => row.id),
    )
    .orderBy('seq')
    .execute();
  if (endorsements.length === 0) return rows.map(deviceView);
  const devices = await ctx.db
    .selectFrom('devices')
    .select(['public_key', 'name', 'status'])
    .where('account_id', '=', accountId)
    .execute();
  const byKey = new Map(devices.map((d) => [d.public_key, d]));
  const anyTrusted = devices.some((d) => isTrusted(d));
  return rows.map((row) => {
    const view = deviceView(row);
    const signers = [
      ...new Set(endorsements.filter((e) => e.subject_device_id === row.id).map((e) => e.signer_device_key)),
    ];
    if (row.status !== 'pending' || signers.length === 0) return view;
    const named = signers.map((key) => {
      const signer = byKey.get(key);
      if (signer === undefined) return 'a device no longer in the account';
      return `${signer.name} (${signer.status === 'revoked' ? 'revoked' : 'itself waiting for approval'})`;
    });
    const remedy = anyTrusted
      ? `approve it again from a trusted computer: hangar devices approve ${row.name} --yes, or with the approval code it shows (hangar account on it)`
      : 'no device of the account is trusted any more: pair it with each host by a code (hangar-agent pair on the host, then hangar hosts add on it with --code)';
    return {
      ...view,
      needs_approval_again:
        `approved before by ${named.join(', ')}, but no chain of approvals from a trusted device reaches it now, ` +
        `so hosts refuse it: ${remedy}`,
    };
  });
}

export const MAX_STATEMENTS_PER_READ = 1000;

export async function statementsSince(ctx: RelayContext, accountId: string, since: number): Promise<StoredStatement[]> {
  const rows = await ctx.db
    .selectFrom('statements')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('seq', '>', since)
    .orderBy('seq')
    .limit(MAX_STATEMENTS_PER_READ)
    .execute();
  return rows.map(storedStatement);
}

export function storedStatement(row: RelayTables['statements']): StoredStatement {
  return {
    kind: row.kind as StoredStatement['kind'],
    account_id: row.account_id,
    subject_device_key: row.subject_device_key,
    subject_name: row.subject_name,
    issued_at: row.issued_at,
    signer_device_key: row.signer_device_key,
    signature: row.signature,
    seq: row.seq,
    stored_at: row.stored_at,
  };
}

/** `reason`: for a revocation, what the device's sockets and splices are told as they close. */
export async function storeStatement(
  ctx: RelayContext,
  call: Call,
  kind: 'endorse' | 'revoke',
  deviceId: string,
  statement: Statement,
  reason?: string,
): Promise<number> {
  const signer = signedIn(call);
  const subject = await checkStatement(ctx, signer, kind, deviceId, statement);
  // The same statement sent twice, or the same signer saying the same of the same key again (another
  // issued_at), adds nothing: an endorsement counts for as long as its signer is trusted and a
  // revocation for ever, on hosts as here. Answered with the first one's seq, so a device cannot grow
  // its account's statements (which hosts keep and settleTrust reads on every statement) without bound.
  const said = await ctx.db
    .selectFrom('statements')
    .select('seq')
    .where('account_id', '=', signer.account_id)
    .where('kind', '=', kind)
    .where('signer_device_key', '=', statement.signer_device_key)
    .where('subject_device_key', '=', statement.subject_device_key)
    .orderBy('seq')
    .executeTakeFirst();
  if (said !== undefined) return said.seq;
  const now = ctx.now();
  const changed: string[] = []; // devices settleTrust moved, besides the subject
  const seq = await ctx.db.transaction().execute(async (trx) => {
    // The account row is the counter: its update serializes concurrent statements (both dialects).
    const counter = await trx
      .updateTable('accounts')
      .set((eb) => ({ statement_seq: eb('statement_seq', '+', 1) }))
      .where('id', '=', signer.account_id)
      .returning('statement_seq')
      .executeTakeFirstOrThrow();
    await trx
      .insertInto('statements')
      .values({
        account_id: signer.account_id,
        seq: counter.statement_seq,
        kind,
        subject_device_id: subject.id,
        subject_device_key: statement.subject_device_key,
        subject_name: statement.subject_name,
        issued_at: statement.issued_at,
        signer_device_key: statement.signer_device_key,
        signature: statement.signature,
        stored_at: now,
      })
      .execute();
    if (kind === 'endorse') {
      // Only a pending device changes: one already trusted (the account's first, vouched for back by
      // a computer it approved) keeps its status and who approved it.
      await trx
        .updateTable('devices')
        .set({ status: 'endorsed', endorsed_by: signer.public_key })
        .where('id', '=', subject.id)
        .where('status', '=', 'pending')
        .execute();
      // A device approved again brings back what it had approved (PROTOCOL.md "Trust follows the chain").
      changed.push(...(await settleTrust(trx, signer.account_id)));
    } else {
      await trx
        .updateTable('devices')
        .set({ status: 'revoked', revoked_by: signer.public_key })
        .where('id', '=', subject.id)
        .execute();
      // A revoked device loses its relay session at once (hosts refuse it at its next link).
      await trx
        .updateTable('refresh_tokens')
        .set({ revoked_at: now })
        .where('device_id', '=', subject.id)
        .where('revoked_at', 'is', null)
        .execute();
      // What only the revoked device vouched for needs approval again, as on every host.
      changed.push(...(await settleTrust(trx, signer.account_id, { revoker: signer.id, revoked: subject.id })));
    }
    return counter.statement_seq;
  });
  await ctx.audit.record(
    auditContext(call, signer.account_id),
    kind === 'endorse' ? 'device.endorsed' : 'device.revoked',
    {
      device_id: subject.id,
      device_name: subject.name,
      seq,
    },
  );
  const updated = await ctx.db.selectFrom('devices').selectAll().where('id', '=', subject.id).executeTakeFirstOrThrow();
  await ctx.bus.publish({ t: 'statements', account_id: signer.account_id });
  await ctx.bus.publish({ t: 'device.changed', account_id: signer.account_id, device: deviceView(updated) });
  if (kind === 'revoke') {
    await ctx.bus.publish({ t: 'device.revoked', device_id: subject.id, ...(reason !== undefined ? { reason } : {}) });
  }
  for (const id of new Set(changed)) {
    if (id === subject.id) continue;
    const row = await ctx.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (row !== undefined) {
      await ctx.bus.publish({ t: 'device.changed', account_id: signer.account_id, device: deviceView(row) });
    }
  }
  return seq;
}

/**
 * The relay's record follows what a host computes from the same signed statements
 * (host-agent/src/relay/statements.ts): a device counts as endorsed while a chain of endorsements by
 * unrevoked devices reaches it from a root, and needs approval again (pending) once none does. The
 * relay's roots are the hosts' roots as far as it knows them: the account's first device and every
 * device that enrolled a host of the account (that host pinned it at its first link). A device
 * pending again whose chain comes back (its approver approved again) is endorsed again. Returns the
 * ids of the devices it changed.
 *
 * `revocation`: the device that just signed one, and the one it revoked. Should that leave no
 * device of the revoker's person trusted (it revoked their last root: the owner's first computer,
 * stolen, when none of the owner's other computers enrolled a host), and the revoked device was
 * that person's, the revoker takes its place on the relay (`first`) rather than leave them with no
 * device that may approve or enroll anything; hosts that pinned only the revoked root refuse it
 * until it pairs by a code. While another device of theirs is still reached, it is not: a device
 * that revokes its approver, or a stolen laptop that revokes the first computer, would otherwise
 * make itself a root the owner's remaining computers could no longer outrank. Nor does another
 * person's device (a member's revoking the owner's computer) take the owner's place.
 */
export async function settleTrust(
  trx: RelayDb,
  accountId: string,
  revocation?: { revoker: string; revoked: string },
): Promise<string[]> {
  const devices = await trx.selectFrom('devices').selectAll().where('account_id', '=', accountId).execute();
  const enrollers = new Set(
    (await trx.selectFrom('hosts').select('enrolled_by').where('account_id', '=', accountId).execute()).map(
      (row) => row.enrolled_by,
    ),
  );
  const revoked = new Set(devices.filter((d) => d.status === 'revoked').map((d) => d.public_key));
  const endorsements = await trx
    .selectFrom('statements')
    .select(['signer_device_key', 'subject_device_key'])
    .where('account_id', '=', accountId)
    .where('kind', '=', 'endorse')
    .orderBy('seq')
    .execute();
  const endorsedBy = new Map<string, Set<string>>(); // signer -> subjects (each once, however often endorsed)
  for (const row of endorsements) {
    if (revoked.has(row.signer_device_key)) continue; // a revoked key signs nothing that counts
    const subjects = endorsedBy.get(row.signer_device_key);
    if (subjects === undefined) endorsedBy.set(row.signer_device_key, new Set([row.subject_device_key]));
    else subjects.add(row.subject_device_key);
  }
  const reachedBy = new Map<string, string | null>(); // key -> the key that vouched for it (null: a root)
  const queue: string[] = [];
  const reachFrom = (root: string) => {
    reachedBy.set(root, null);
    queue.push(root);
    // Breadth first from the roots: each key is visited once, so a cycle of endorsements ends.
    for (let next = queue.length - 1; next < queue.length; next++) {
      for (const subject of endorsedBy.get(queue[next]!) ?? []) {
        if (reachedBy.has(subject) || revoked.has(subject)) continue;
        reachedBy.set(subject, queue[next]!);
        queue.push(subject);
      }
    }
  };
  for (const device of devices) {
    if (revoked.has(device.public_key) || reachedBy.has(device.public_key)) continue;
    if (device.status === 'first' || enrollers.has(device.id)) reachFrom(device.public_key);
  }
  const changed: string[] = [];
  const acting = devices.find((d) => d.id === revocation?.revoker);
  const gone = devices.find((d) => d.id === revocation?.revoked);
  // Only when nobody is left: a device that revokes its own approver, or a stolen laptop that
  // revokes the first computer while the owner keeps another root (a computer that enrolled a host),
  // waits again as hosts have it, rather than becoming a root no later revocation up its chain reaches.
  if (
    acting !== undefined &&
    !revoked.has(acting.public_key) &&
    !reachedBy.has(acting.public_key) &&
    // The same person's: a member revoking the owner's first computer does not take the account over,
    // and the owner is not left waiting on a member to approve their own computer again.
    gone !== undefined &&
    gone.member_email === acting.member_email &&
    !devices.some((d) => d.member_email === acting.member_email && reachedBy.has(d.public_key))
  ) {
    await trx.updateTable('devices').set({ status: 'first' }).where('id', '=', acting.id).execute();
    acting.status = 'first';
    changed.push(acting.id);
    reachFrom(acting.public_key);
  }
  for (const device of devices) {
    const voucher = reachedBy.get(device.public_key);
    if (device.status === 'endorsed' && voucher === undefined) {
      await trx
        .updateTable('devices')
        .set({ status: 'pending', endorsed_by: null })
        .where('id', '=', device.id)
        .execute();
      changed.push(device.id);
    } else if (device.status === 'pending' && typeof voucher === 'string') {
      await trx
        .updateTable('devices')
        .set({ status: 'endorsed', endorsed_by: voucher })
        .where('id', '=', device.id)
        .execute();
      changed.push(device.id);
    }
  }
  return changed;
}

export async function checkStatement(
  ctx: RelayContext,
  signer: DeviceRow,
  kind: 'endorse' | 'revoke',
  deviceId: string,
  statement: Statement,
): Promise<DeviceRow> {
  if (statement.kind !== kind) {
    throw new HangarError('E_BAD_REQUEST', `statement.kind: expected "${kind}" for devices.${kind}`);
  }
  if (statement.account_id !== signer.account_id) {
    throw new HangarError('E_BAD_REQUEST', 'statement.account_id: the statement is about another account');
  }
  if (statement.signer_device_key !== signer.public_key) {
    throw new HangarError('E_FORBIDDEN', 'statement.signer_device_key: a device may submit only statements it signed');
  }
  if (statement.issued_at > ctx.now() + LOGIN_PROOF_WINDOW_MS) {
    throw new HangarError('E_BAD_REQUEST', "statement.issued_at is in the future; check this computer's clock");
  }
  const subject = await ctx.db
    .selectFrom('devices')
    .selectAll()
    .where('id', '=', deviceId)
    .where('account_id', '=', signer.account_id)
    .executeTakeFirst();
  if (subject === undefined) {
    throw new HangarError('E_NOT_FOUND', `no device ${deviceId} in this account (devices.list shows them)`);
  }
  if (statement.subject_device_key !== subject.public_key) {
    throw new HangarError('E_BAD_REQUEST', `statement.subject_device_key is not the key of device ${deviceId}`);
  }
  if (kind === 'endorse' && subject.id === signer.id) {
    throw new HangarError('E_FORBIDDEN', 'a device cannot approve itself; approve it from another trusted device');
  }
  if (kind === 'endorse' && subject.status === 'revoked') {
    throw new HangarError(
      'E_AUTH_DEVICE_REVOKED',
      `${subject.name} was revoked; a revoked key stays revoked (sign in on it again to make a new key)`,
    );
  }
  if (!verifyStatement(statement)) {
    throw new HangarError(
      'E_AUTH_BAD_SIGNATURE',
      'statement.signature does not verify (statementBytes, signer_device_key)',
    );
  }
  return subject;
}
