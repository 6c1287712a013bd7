import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  HangarError,
  fromHex,
  usageRecordBytes,
  usageRecordKey,
  type UsageRecord,
  type UsageReportResult,
} from '@hangar/shared';
import type { RelayContext } from '../context.js';
import type { RelayTables } from '../store/schema.js';
import { bestLive } from './account-state.js';

/** A minute may be reported at most this far ahead of the relay's clock (clock skew). */
const FUTURE_SLACK_MS = 5 * 60_000;
/** Rows per INSERT: well under SQLite's 32,766 bound parameters at 15 columns a row. */
const INSERT_CHUNK = 200;

/**
 * Stores a host's usage records: each must be signed by that host's enrolled key (a host can
 * only report its own minutes), and each (host, attempt, minute) is stored once under its usage
 * key, whatever number of times it arrives. Stored and already-stored records are acknowledged
 * alike, so an agent that lost an ack and resends counts nothing twice. A record is billed (its
 * row is in the meter outbox) when its account had a live paid subscription by that minute;
 * trial minutes count against the trial's allowance and are never sent to Stripe.
 */
export async function reportUsage(
  ctx: RelayContext,
  hostId: string,
  records: UsageRecord[],
): Promise<UsageReportResult & { accountId: string; stored: number }> {
  const host = await ctx.db
    .selectFrom('hosts')
    .select(['id', 'account_id', 'public_key'])
    .where('id', '=', hostId)
    .executeTakeFirst();
  if (host === undefined) {
    throw new HangarError('E_NOT_FOUND', `host ${hostId} is not enrolled on this relay; enroll it again`);
  }
  const now = ctx.now();
  const minuteMs = ctx.billing.minuteMs;
  const key = hostKeyObject(host.public_key);
  const acked: string[] = [];
  const refused: UsageReportResult['refused'] = [];
  const valid: { record: UsageRecord; key: string; minuteAt: number }[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    const usageKey = usageRecordKey(record);
    if (record.host_key !== host.public_key) {
      refused.push({ key: usageKey, code: 'E_FORBIDDEN', message: 'host_key is not the key this host enrolled with' });
      continue;
    }
    if (!verify(null, usageRecordBytes(record), key, fromHex(record.signature))) {
      refused.push({
        key: usageKey,
        code: 'E_AUTH_BAD_SIGNATURE',
        message: 'signature does not verify with the host key (usageRecordBytes)',
      });
      continue;
    }
    const minuteAt = record.started_at + record.minute_index * minuteMs;
    if (minuteAt > now + FUTURE_SLACK_MS) {
      refused.push({
        key: usageKey,
        code: 'E_BAD_REQUEST',
        message: `minute ${record.minute_index} has not started yet by the relay's clock; check this host's clock`,
      });
      continue;
    }
    acked.push(usageKey);
    if (seen.has(usageKey)) continue; // the same minute twice in one batch
    seen.add(usageKey);
    valid.push({ record, key: usageKey, minuteAt });
  }
  let stored = 0;
  if (valid.length > 0) {
    const billedFrom = await billingStart(ctx, host.account_id);
    const rows: RelayTables['usage_records'][] = valid.map(({ record, key: usageKey, minuteAt }) => {
      const billed = billedFrom !== undefined && minuteAt >= billedFrom.since;
      return {
        key: usageKey,
        account_id: host.account_id,
        host_id: host.id,
        attempt_id: record.attempt_id,
        job_id: record.job_id,
        minute_index: record.minute_index,
        started_at: record.started_at,
        minute_at: minuteAt,
        received_at: now,
        meter_state: billed ? 'pending' : 'none',
        stripe_customer_id: billed ? billedFrom.customer : null,
        send_attempts: 0,
        next_send_at: 0,
        sent_at: null,
        last_error: null,
      };
    });
    await ctx.db.transaction().execute(async (trx) => {
      for (let at = 0; at < rows.length; at += INSERT_CHUNK) {
        const result = await trx
          .insertInto('usage_records')
          .values(rows.slice(at, at + INSERT_CHUNK))
          .onConflict((oc) => oc.column('key').doNothing())
          .executeTakeFirst();
        stored += Number(result.numInsertedOrUpdatedRows ?? 0);
      }
    });
  }
  ctx.metrics.usageRecords.inc({ outcome: 'stored' }, stored);
  ctx.metrics.usageRecords.inc({ outcome: 'duplicate' }, acked.length - stored);
  ctx.metrics.usageRecords.inc({ outcome: 'refused' }, refused.length);
  return { acked, refused, accountId: host.account_id, stored };
}

/**
 * From when an account's minutes are billed, and to which Stripe customer: the start of its
 * live paid subscription, when it has one (billing on). Minutes before it (the trial's) are not.
 */
async function billingStart(
  ctx: RelayContext,
  accountId: string,
): Promise<{ since: number; customer: string } | undefined> {
  if (!ctx.billing.isOn) return undefined;
  const subscriptions = await ctx.db
    .selectFrom('subscriptions')
    .selectAll()
    .where('account_id', '=', accountId)
    .execute();
  const live = bestLive(subscriptions);
  return live === undefined ? undefined : { since: live.created_at, customer: live.stripe_customer_id };
}

const keyObjects = new Map<string, KeyObject>();
/** Ed25519 SPKI DER is a fixed 12-byte prefix then the raw key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * node:crypto verifies several times faster than the pure-JS verifier in shared (both strict RFC
 * 8032), which matters at thousands of records a second; key objects are cached per host key.
 */
function hostKeyObject(publicKeyHex: string): KeyObject {
  let key = keyObjects.get(publicKeyHex);
  if (key === undefined) {
    key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(publicKeyHex, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    if (keyObjects.size > 10_000) keyObjects.clear();
    keyObjects.set(publicKeyHex, key);
  }
  return key;
}
