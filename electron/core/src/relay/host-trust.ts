import { HangarError, openApprovalBundle, type HostPresence } from '@hangar/shared';
import type { RelayAccount } from './relay-account.js';

/**
 * Whether this computer may take an account host's keys from the relay's list (relay/PROTOCOL.md
 * "More devices: the approval code"). A computer approved with a code opens the bundle its approver
 * sealed with that code and trusts the hosts in it, and no host the relay lists besides: a relay
 * that lists a machine of its own as "mini" is refused before anything is dialed. One approved
 * without a code (--yes) takes them on the relay's word, and says so (hosts ls). The account's first
 * computer pins the hosts it enrolls itself (the enrollment secret proves them).
 */
export type HostKeysFrom = 'bundle' | 'relay' | 'own';

export async function hostKeysFor(account: RelayAccount, name: string, host: HostPresence): Promise<HostKeysFrom> {
  const from = await settle(account);
  if (from !== 'bundle') return from;
  const signedIn = account.stored()!;
  const vouched = account.store
    .trustedKeys(signedIn.account_id, 'host')
    .find((k) => k.key === host.public_key && k.cert_fingerprint === host.cert_fingerprint);
  if (vouched === undefined) {
    throw new HangarError(
      'E_AUTH_HOST_KEY_CHANGED',
      `the relay lists "${name}" with a key that the computer which approved this one did not hand over: ` +
        'the relay may be compromised (showing this computer a machine of its own), or the host was enrolled ' +
        'after this computer was approved. Nothing was dialed. Pair with it directly (hangar-agent pair on the ' +
        'host, then hangar hosts add), or approve this computer again from one that has linked to it',
      { listed: host.public_key },
    );
  }
  return 'bundle';
}

/** Opens the approver's bundle once this computer is approved; the outcome is kept in the database. */
async function settle(account: RelayAccount): Promise<HostKeysFrom> {
  const signedIn = account.stored();
  if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', 'signed out while linking; sign in again');
  const trust = account.store.trust(signedIn.account_id);
  if (trust === undefined) return 'own';
  if (trust.host_trust !== null) return trust.host_trust;
  const code = trust.approval_code;
  if (code === null) return 'own';
  const { bundle } = await account.call('devices.bundle', {});
  const now = Date.now();
  if (bundle === null) {
    const listed = await account.call('devices.list', {});
    const mine = listed.devices.find((d) => d.device_id === listed.this_device);
    if (mine === undefined || mine.status !== 'endorsed') return 'own'; // not approved yet: hosts refuse it anyway
    // Approved, and no bundle: approved without a code (--yes). A relay that withholds the bundle
    // gets the same, in plain sight: hosts ls marks such hosts, hangar account says so.
    account.store.settleTrust(signedIn.account_id, 'relay', [], now);
    return 'relay';
  }
  const opened = openApprovalBundle(code, bundle, { deviceKey: account.publicKey, accountId: signedIn.account_id });
  account.store.settleTrust(
    signedIn.account_id,
    'bundle',
    [
      ...opened.devices.map((key) => ({ kind: 'device' as const, key, name: '', cert_fingerprint: null })),
      ...opened.hosts.map((h) => ({
        kind: 'host' as const,
        key: h.host_key,
        name: h.name,
        cert_fingerprint: h.cert_fingerprint,
      })),
    ],
    now,
  );
  return 'bundle';
}
