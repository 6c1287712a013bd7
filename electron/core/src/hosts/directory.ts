import { HostName, type HostRecord } from '@hangar/shared';
import type { AccountHost } from '../relay/account-hosts.js';

/**
 * One list of hosts: the ones paired on this computer (the registry) and the ones enrolled in its
 * account (the relay's word), one entry when both: the same agent key. A paired host keeps its
 * name here; an account host only the relay knows gets the name it was enrolled under, or, when a
 * paired host already has that name, the first free `name-2`, `name-3`… (the same on every call,
 * so a name from `hangar hosts ls` works in the next command).
 */
export interface HostEntry {
  name: string;
  /** Paired (with a code, or at an enrolled host's first link): the pins this computer holds. */
  record: (HostRecord & { last_seen: number | null }) | undefined;
  account: AccountHost | undefined;
  /** Its keys are the relay's word: this computer was approved without a code (relay/PROTOCOL.md). */
  keys_from_relay?: boolean;
}

export function mergeHosts(
  records: (HostRecord & { last_seen: number | null })[],
  account: AccountHost[],
): HostEntry[] {
  const byKey = new Map(account.map((a) => [a.host.public_key, a]));
  const entries: HostEntry[] = records.map((record) => ({
    name: record.name,
    record,
    account: byKey.get(record.agent_key),
  }));
  const matched = new Set(entries.flatMap((e) => (e.account ? [e.account.host.host_id] : [])));
  const taken = new Set(records.map((r) => r.name));
  const unmatched = account
    .filter((a) => !matched.has(a.host.host_id))
    .sort((a, b) => a.host.enrolled_at - b.host.enrolled_at || a.host.host_id.localeCompare(b.host.host_id));
  for (const host of unmatched) {
    const name = freeName(host.host.name, taken);
    taken.add(name);
    entries.push({ name, record: undefined, account: host });
  }
  return entries;
}

function freeName(wanted: string, taken: Set<string>): string {
  if (!taken.has(wanted)) return wanted;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const name = wanted.slice(0, 32 - suffix.length) + suffix;
    if (!taken.has(name) && HostName.safeParse(name).success) return name;
  }
}
