import type { HostView } from '../src/api/index.js';

/** What pairing pinned (public), as hosts.list gives it. */
export const pins = {
  agent_key: 'MCowBQYDK2VwAyEA',
  cert_fingerprint: 'sha256:ab:cd',
  added_at: 1,
  last_seen: null,
  via: 'direct' as const,
  account: null,
};

/** A paired host as hosts.list lists it: online at `<name>:7070` unless `overrides` say otherwise. */
export function hostView(name: string, overrides: Partial<HostView> = {}): HostView {
  return {
    name,
    address: `${name}:7070`,
    embedded: false,
    ...pins,
    status: 'online',
    info: null,
    stats: null,
    error: null,
    ...overrides,
  };
}

/** A host that refused the connection: offline, with the error it gave. */
export const offlineLaptop = hostView('laptop', {
  address: '10.0.0.9:7070',
  status: 'offline',
  error: 'connection refused (10.0.0.9:7070)',
});
