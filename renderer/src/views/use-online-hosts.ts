import { useMemo } from 'react';
import type { HostView } from '../api/index.js';

/**
 * The names of the hosts that are online, in the order given: the same array until that set
 * changes. A host's view changes every few seconds (its metrics, its sessions); what lists a
 * host's tasks or previews again must change only when a host comes online or goes away.
 */
export function useOnlineHosts(hosts: readonly HostView[]): readonly string[] {
  const names = hosts
    .filter((h) => h.status === 'online')
    .map((h) => h.name)
    .join('\n');
  return useMemo(() => (names === '' ? [] : names.split('\n')), [names]);
}
