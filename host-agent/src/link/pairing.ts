import { randomInt } from 'node:crypto';
import type { AgentStore } from '../store/db.js';
import { insertPairingCode, latestPairingCode, type PairingCodeRow } from '../store/pairing.js';

/** A code is good for 10 minutes and one pairing. */
export const PAIRING_CODE_TTL_MS = 10 * 60 * 1000;
/** After this many wrong guesses a code is burned: 5 guesses of 10^6 is a 1-in-200,000 chance. */
export const MAX_FAILED_ATTEMPTS = 5;
/** How long a used or expired code is still recognised, so its holder gets a precise error. */
export const RECENT_CODE_WINDOW_MS = 60 * 60 * 1000;

export interface IssuedPairingCode {
  /** `123-456` */
  code: string;
  expiresAt: number;
}

/** Makes a new single-use code; older unused codes stop working. Used by `hangar-agent pair`. */
export function issuePairingCode(store: AgentStore, options: { now?: () => number } = {}): IssuedPairingCode {
  const now = (options.now ?? Date.now)();
  const digits = String(randomInt(0, 1_000_000)).padStart(6, '0');
  const row = insertPairingCode(store, digits, now, PAIRING_CODE_TTL_MS);
  return { code: `${digits.slice(0, 3)}-${digits.slice(3)}`, expiresAt: row.expires_at };
}

export type PairingCodeState = 'active' | 'used' | 'expired' | 'burned';

export interface SelectedPairingCode {
  row: PairingCodeRow;
  state: PairingCodeState;
}

/**
 * CPace needs the agent to commit to one password before the device speaks, so pick it here:
 * the active code, else the most recent one used/expired/burned within the last hour (so a
 * correct but stale code gets a precise refusal), else none.
 */
export function selectPairingCode(store: AgentStore, now: number): SelectedPairingCode | undefined {
  const row = latestPairingCode(store);
  if (row === undefined || row.revoked_at !== null) return undefined;
  if (row.burned_at !== null) return row.burned_at > now - RECENT_CODE_WINDOW_MS ? { row, state: 'burned' } : undefined;
  if (row.used_at !== null) return row.used_at > now - RECENT_CODE_WINDOW_MS ? { row, state: 'used' } : undefined;
  if (row.expires_at <= now)
    return row.expires_at > now - RECENT_CODE_WINDOW_MS ? { row, state: 'expired' } : undefined;
  return { row, state: 'active' };
}
