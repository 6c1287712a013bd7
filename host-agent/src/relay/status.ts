import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { loadEntitlement, pendingUsageCount } from '../billing/billing-store.js';
import { agentDbPath } from '../store/db.js';
import { countPendingFirstLinks, loadEnrollment } from './relay-store.js';

export interface RelayStatus {
  relay_url: string;
  host_id: string;
  account_id: string;
  name: string;
  enrolled_at: number;
  /**
   * The relay link as the running `hangar-agent serve` last recorded it; `not serving` when no
   * serve process is recorded or the one recorded is gone.
   */
  state: 'online' | 'connecting' | 'offline' | 'stopped' | 'not serving';
  /** Why the link is not up (the last failure), when it is not. */
  error: string | null;
  /** When it entered that state. */
  since: number | null;
  /** The serve process that recorded the state (an update waits for the new one's, not the old one's). */
  pid: number | null;
  /** Enrollment tokens whose device has yet to make its first link here. */
  first_links_pending: number;
  /** Billing (host-agent/src/billing): the last entitlement held and the build minutes not yet acknowledged. */
  billing: {
    plan: string;
    metered: boolean;
    minutes_left: number | null;
    reason: string | null;
    valid_until: number;
    unsent_minutes: number;
  } | null;
}

/**
 * The relay enrollment of the agent at `dataDir`, for `hangar-agent status`, the installer and
 * doctor, from another process than serve: null when this host is not enrolled. Read-only: it
 * may run as root on a system install, or from another version than the agent that is serving,
 * so it neither creates the database nor migrates it.
 */
export function relayStatus(dataDir: string, now = Date.now()): RelayStatus | null {
  const file = agentDbPath(dataDir);
  if (!existsSync(file)) return null;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const migrated = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'relay_enrollment'").get();
    if (migrated === undefined) return null;
    const store = { db };
    const row = loadEnrollment(store);
    if (row === undefined) return null;
    const serving = row.state_pid !== null && isAlive(row.state_pid) && row.state !== null;
    return {
      relay_url: row.relay_url,
      host_id: row.host_id,
      account_id: row.account_id,
      name: row.name,
      enrolled_at: row.enrolled_at,
      state: serving ? (row.state as RelayStatus['state']) : 'not serving',
      error: serving ? row.state_error : null,
      since: serving ? row.state_at : null,
      pid: serving ? row.state_pid : null,
      first_links_pending: countPendingFirstLinks(store, now),
      billing: billingStatus(store, row.host_id),
    };
  } finally {
    db.close();
  }
}

function billingStatus(store: { db: Database.Database }, hostId: string): RelayStatus['billing'] {
  // An agent.db from before billing (migration 6) has none of it yet.
  if (
    store.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'relay_entitlement'").get() ===
    undefined
  ) {
    return null;
  }
  const entitlement = loadEntitlement(store, hostId);
  if (entitlement === undefined) return null;
  return {
    plan: entitlement.plan,
    metered: entitlement.metered,
    minutes_left: entitlement.minutes_left,
    reason: entitlement.reason,
    valid_until: entitlement.valid_until,
    unsent_minutes: pendingUsageCount(store, hostId),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but is another user's (serve runs as a service user); ESRCH: gone.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
