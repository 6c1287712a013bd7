import { HangarError } from '../errors.js';
import type { Ed25519Signer } from '../link/handshake.js';
import { Entitlement, type EntitlementFields, type RefusalReason } from '../protocol/billing.js';
import { entitlementBytes, signHex, verifyHex } from './statements.js';

/**
 * Entitlements: what the relay lets an enrolled host's metered work (build jobs) do, signed by
 * the relay's entitlement key so the host can check it offline. The relay signs (relay/src/
 * billing/entitlements.ts); the agent verifies and decides with decideMeteredJob before each
 * build job. Terminals and previews are never metered and never asked.
 *
 * The relay's key gives it no power over a host beyond refusing metered jobs, which it could
 * do anyway by not renewing; and the host keeps honouring the last entitlement until
 * valid_until, so a relay outage never stops builds within that day.
 */

export function signEntitlement(signer: Ed25519Signer, fields: EntitlementFields): Entitlement {
  return { ...fields, signature: signHex(signer, entitlementBytes(fields)) };
}

/** True when the relay key signed exactly these fields (schema-checked first). */
export function verifyEntitlement(relayKey: string, entitlement: unknown): entitlement is Entitlement {
  const parsed = Entitlement.safeParse(entitlement);
  if (!parsed.success) return false;
  return verifyHex(relayKey, entitlementBytes(parsed.data), parsed.data.signature);
}

export type MeteredJobDecision =
  { allowed: true; metered: boolean; minutes_left: number | null } | { allowed: false; error: HangarError };

const WHAT_TO_DO: Record<RefusalReason, string> = {
  trial_ended: 'the 7-day trial has ended; upgrade to keep running build jobs: hangar account upgrade pro',
  minutes_used_up:
    "this period's build minutes are used up; upgrade for more (hangar account upgrade pro, or team for unlimited)",
  subscription_ended:
    'the subscription has ended (cancelled or unpaid); renew it to run build jobs: hangar account manage',
};

/**
 * Whether this host may start a metered job now, from the last entitlement it holds (or none).
 * A refusal is E_PLAN_LIMIT with a message that says what to do.
 */
export function decideMeteredJob(
  entitlement: Entitlement | undefined,
  f: { relayKey: string; hostId: string; now: number },
): MeteredJobDecision {
  const refuse = (message: string, details?: Record<string, unknown>): MeteredJobDecision => ({
    allowed: false,
    error: new HangarError('E_PLAN_LIMIT', message, details),
  });
  if (entitlement === undefined) {
    return refuse(
      'this host has no entitlement from its relay yet; let it connect to the relay once (hangar-agent doctor shows the link)',
    );
  }
  if (!verifyEntitlement(f.relayKey, entitlement) || entitlement.host_id !== f.hostId) {
    return refuse(
      'the entitlement this host holds is not signed by its relay for this host; reconnect it to the relay',
    );
  }
  if (!entitlement.metered) return { allowed: true, metered: false, minutes_left: null };
  if (entitlement.valid_until <= f.now) {
    return refuse(
      `the entitlement expired at ${new Date(entitlement.valid_until).toISOString()} and the relay has not renewed it; reconnect this host to the relay`,
      { valid_until: entitlement.valid_until },
    );
  }
  if (entitlement.reason !== null) return refuse(WHAT_TO_DO[entitlement.reason], { reason: entitlement.reason });
  if (entitlement.minutes_left !== null && entitlement.minutes_left <= 0) {
    return refuse(WHAT_TO_DO.minutes_used_up, { reason: 'minutes_used_up' });
  }
  return { allowed: true, metered: true, minutes_left: entitlement.minutes_left };
}

/** The sentence a refusal shows, for the relay's billing.status (the same words the agent uses). */
export function refusalMessage(reason: RefusalReason): string {
  return WHAT_TO_DO[reason];
}
