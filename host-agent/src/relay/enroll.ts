import {
  HangarError,
  HostName,
  RelayClient,
  enrollProofBytes,
  isHangarError,
  parseEnrollToken,
  signHex,
  type FetchLike,
} from '@hangar/shared';
import { hostname } from 'node:os';
import { loadOrCreateAgentKey } from '../identity/keys.js';
import { loadOrCreateTlsCert } from '../identity/tls.js';
import { saveEntitlementKey } from '../billing/billing-store.js';
import { AgentStore } from '../store/db.js';
import {
  FIRST_LINK_TTL_MS,
  findFirstLink,
  noteEnrollmentChanged,
  saveEnrollment,
  voidExpiredFirstLinks,
} from './relay-store.js';

export interface EnrollOptions {
  /** The agent's data directory (keys, agent.db); made if it does not exist yet. */
  dataDir: string;
  /** The `hgr1_…` line `hangar hosts enroll-token` printed (whitespace around it is fine). */
  token: string;
  /** What the account calls this host; default: this machine's host name, made to fit. */
  name?: string;
  /** Tests inject a clock and a fetch; the agent uses Date.now and Node's fetch. */
  now?: () => number;
  fetch?: FetchLike;
}

export interface Enrollment {
  relay_url: string;
  host_id: string;
  account_id: string;
  name: string;
  /** Until when the device that made the token can make its first link (7 days). */
  first_link_expires_at: number;
}

const NEW_TOKEN = 'make a new one with `hangar hosts enroll-token` on your computer and run this again';

/**
 * Enrolls this host in the account that made `token`: registers the agent's public key and TLS
 * certificate fingerprint with the relay (the token's relay part, single use) and stores, in
 * agent.db, the enrollment and the first link the token promises to the device that made it
 * (its key `d` and end-to-end secret `e`, which never leave this host). A running `hangar-agent
 * serve` picks the enrollment up within seconds and goes online; so does the next one started.
 * Throws a HangarError that says what to do (token used or expired, relay unreachable, …).
 */
export async function enroll(options: EnrollOptions): Promise<Enrollment> {
  const token = parseEnrollToken(options.token);
  const now = options.now ?? Date.now;
  const name = options.name ?? defaultHostName();
  const checkedName = HostName.safeParse(name);
  if (!checkedName.success) {
    throw new HangarError('E_BAD_REQUEST', `--name ${name}: ${checkedName.error.issues[0]?.message ?? 'invalid'}`);
  }
  const store = AgentStore.open(options.dataDir);
  try {
    voidExpiredFirstLinks(store, now());
    // This host spent this token already: a relay that took it again would be replaying it.
    if (findFirstLink(store, token.i) !== undefined) {
      throw new HangarError(
        'E_TOKEN_USED',
        `this enrollment token was already used on this host (each works once); ${NEW_TOKEN}`,
      );
    }
    const [key, tls] = await Promise.all([loadOrCreateAgentKey(options.dataDir), loadOrCreateTlsCert(options.dataDir)]);
    const certFingerprint = tls.fingerprint.replace(/:/g, '').toLowerCase();
    const client = new RelayClient({ url: token.r, ...(options.fetch ? { fetch: options.fetch } : {}) });
    let enrolled: { host_id: string; account_id: string; entitlement_key: string };
    try {
      enrolled = await client.call('hosts.enroll', {
        token_id: token.i,
        relay_secret: token.s,
        host: { public_key: key.publicKeyHex, cert_fingerprint: certFingerprint, name },
        proof: signHex(
          key.signer,
          enrollProofBytes({ tokenId: token.i, publicKey: key.publicKeyHex, certFingerprint }),
        ),
      });
    } catch (error) {
      throw explain(error, token.r);
    }
    const enrolledAt = now();
    const expiresAt = enrolledAt + FIRST_LINK_TTL_MS;
    saveEnrollment(
      store,
      { relay_url: token.r, host_id: enrolled.host_id, account_id: enrolled.account_id, name, enrolled_at: enrolledAt },
      { token_id: token.i, device_key: token.d, e2e_secret: token.e, expires_at: expiresAt },
    );
    // Entitlements from this relay verify with this key, offline too (billing/metering.ts).
    saveEntitlementKey(store, enrolled.host_id, enrolled.entitlement_key);
    // An agent serving this data dir connects now (relay-link.ts watches this file).
    noteEnrollmentChanged(options.dataDir);
    return {
      relay_url: token.r,
      host_id: enrolled.host_id,
      account_id: enrolled.account_id,
      name,
      first_link_expires_at: expiresAt,
    };
  } finally {
    store.dispose();
  }
}

/** `Mini.local` → `Mini`; anything a HostName may not hold becomes `-`, at most 32 characters. */
export function defaultHostName(raw = hostname()): string {
  const cleaned = raw
    .split('.')[0]!
    .replace(/[^a-z0-9_-]/gi, '-')
    .replace(/^[-_]+/, '')
    .slice(0, 32);
  return cleaned === '' ? 'host' : cleaned;
}

function explain(error: unknown, relayUrl: string): unknown {
  if (!isHangarError(error)) return error;
  switch (error.code) {
    case 'E_UNAVAILABLE': {
      // RelayClient says "relay unreachable at URL (why); …": keep the why, say where the URL came from.
      const why = /\(([^)]*)\)/.exec(error.message)?.[1] ?? error.message;
      return new HangarError(
        'E_UNAVAILABLE',
        `relay unreachable at ${relayUrl} (${why}). That URL comes from the token line: check that the line was ` +
          'pasted whole, that this host can reach that address, and that hangar-relay runs there; then run this again',
        error.details,
      );
    }
    default:
      // The relay's own messages already say what to do (make a new token, remove the host there first).
      return error;
  }
}
