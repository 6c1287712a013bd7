import { verifyPresence, type HostInfo, type HostStats, type HostStatus, type HostView } from '@hangar/shared';
import type { HostEntry } from '../hosts/directory.js';
import { colonFingerprint } from '../relay/reach.js';

/** What the monitor knows of a host's link besides the entry: its status, what the agent said, why it is down. */
export interface LinkState {
  status: HostStatus;
  info: HostInfo | null;
  stats: HostStats | null;
  error: string | null;
  /** The live link's path when it is a fallback's (p2p, turn), with its round trip. */
  path?: { kind: string; rtt_ms: number | null } | null;
}

/**
 * A host as clients see it (HostView): a paired host's record, the account's word on it, or both
 * (one entry, matched by key), and how this computer reaches it.
 */
export function hostView(entry: HostEntry, link: LinkState, now = Date.now()): HostView {
  const { record, account } = entry;
  const presence = account?.host;
  // Shown only as the host signed it; a record the relay altered is not shown (nor dialed).
  const published =
    presence?.record && presence.signature && verifyPresence(presence.public_key, presence.record, presence.signature)
      ? presence.record
      : null;
  const online = link.status === 'online';
  const seen = [
    online ? now : null,
    record?.last_seen ?? null,
    account?.presence === 'online' ? now : null,
    presence?.last_seen ?? null,
  ].filter((t): t is number => t !== null);
  return {
    name: entry.name,
    address: record?.address ?? published?.addresses[0] ?? published?.tailnet[0] ?? '',
    embedded: record?.embedded ?? false,
    agent_key: record?.agent_key ?? presence!.public_key,
    cert_fingerprint: record?.cert_fingerprint ?? colonFingerprint(presence!.cert_fingerprint),
    added_at: record?.added_at ?? presence!.enrolled_at,
    status: link.status,
    info: link.info,
    stats: online ? link.stats : null,
    error: online ? null : link.error,
    last_seen: seen.length > 0 ? Math.max(...seen) : null,
    via:
      online && (link.path?.kind === 'p2p' || link.path?.kind === 'turn' || link.path?.kind === 'relayed')
        ? link.path.kind
        : record
          ? published?.tailnet.includes(record.address)
            ? 'tailnet'
            : 'direct'
          : 'relay',
    rtt_ms: online && link.path ? link.path.rtt_ms : null,
    ...(entry.keys_from_relay ? { keys_from_relay: true } : {}),
    account: presence
      ? {
          host_id: presence.host_id,
          name: presence.name,
          presence: account!.presence,
          last_seen: presence.last_seen,
          enrolled_at: presence.enrolled_at,
          addresses: published?.addresses ?? [],
          tailnet: published?.tailnet ?? [],
        }
      : null,
  };
}
