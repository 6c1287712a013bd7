import {
  HangarError,
  isHangarError,
  makeHostStatement,
  makeStatement,
  openApprovalBundle,
  verifyHostStatement,
  verifyStatement,
  type HostPresence,
} from '@hangar/shared';
import type { RelayAccount } from './relay-account.js';

/**
 * Whether this computer may take an account host's keys from the relay's list (relay/PROTOCOL.md
 * "More devices: the approval code"). A computer approved with a code opens the bundle its approver
 * sealed with that code and trusts the hosts in it, and no host the relay lists besides: a relay
 * that lists a machine of its own as "mini" is refused before anything is dialed. One approved
 * without a code (--yes) takes them on the relay's word, and says so (hosts ls). Any other computer
 * (the account's first, one approved before approval codes) trusts its own key and the devices it
 * endorsed and what they endorsed: it takes a host another computer enrolled only when one of those
 * vouched for its key (a host it enrolls itself is proved by the enrollment secret, not here).
 */
export type HostKeysFrom = 'bundle' | 'relay' | 'own';

export async function hostKeysFor(account: RelayAccount, name: string, host: HostPresence): Promise<HostKeysFrom> {
  const from = await settle(account);
  if (from === 'relay') return from;
  const signedIn = account.stored()!;
  const handed =
    from === 'bundle' &&
    account.store
      .trustedKeys(signedIn.account_id, 'host')
      .some((k) => k.key === host.public_key && k.cert_fingerprint === host.cert_fingerprint);
  if (handed || (await vouchedByTrusted(account, host))) return from;
  throw new HangarError(
    'E_AUTH_HOST_KEY_CHANGED',
    `the relay lists "${name}" with a key that no computer this one trusts vouched for (` +
      (from === 'bundle' ? 'not handed over at its approval, nor ' : 'not ') +
      'signed by a trusted computer that linked to it): the relay may be compromised (showing this ' +
      'computer a machine of its own). Nothing was dialed. ' +
      (from === 'bundle'
        ? 'Approve this computer again from a trusted one that has linked to the host, or pair with it directly'
        : 'If another of your computers enrolled it, open the Hangar window there and link to the host once ' +
          '(it vouches for the hosts it linked to); or pair with it directly') +
      ' (hangar-agent pair on the host, then hangar hosts add)',
    { listed: host.public_key },
  );
}

/**
 * Whether a device key this computer trusts signed that the host has this key and certificate. The
 * trusted keys: its own, its approver's bundle's, and any a trusted key endorsed since, in the
 * account's statement order, revocations winning (as hosts walk them).
 */
async function vouchedByTrusted(account: RelayAccount, host: HostPresence): Promise<boolean> {
  const accountId = account.stored()!.account_id;
  const vouches = (host.vouches ?? []).filter(
    (v) =>
      v.account_id === accountId &&
      v.host_key === host.public_key &&
      v.cert_fingerprint === host.cert_fingerprint &&
      verifyHostStatement(v),
  );
  if (vouches.length === 0) return false;
  const trusted = new Set(account.trustedDeviceKeys());
  const revoked = new Set<string>();
  let since = 0;
  for (;;) {
    const { statements } = await account.call('statements.list', { since });
    for (const st of statements) {
      since = Math.max(since, st.seq);
      if (st.account_id !== accountId || !verifyStatement(st)) continue;
      if (!trusted.has(st.signer_device_key)) continue;
      if (st.kind === 'revoke') {
        revoked.add(st.subject_device_key);
        trusted.delete(st.subject_device_key);
      } else if (!revoked.has(st.subject_device_key)) {
        trusted.add(st.subject_device_key);
      }
    }
    if (statements.length === 0 || statements.length < 1000) break;
  }
  return vouches.some((v) => trusted.has(v.signer_device_key));
}

/** This computer pinned the host at its first link: it says so, signed, beside the relay's record. */
export async function vouchFor(account: RelayAccount, host: HostPresence): Promise<void> {
  const signedIn = account.stored();
  if (signedIn === undefined) return;
  const statement = makeHostStatement(account.signer, {
    kind: 'host',
    account_id: signedIn.account_id,
    host_key: host.public_key,
    cert_fingerprint: host.cert_fingerprint,
    name: host.name,
    issued_at: Date.now(),
  });
  await account.call('hosts.vouch', { host_id: host.host_id, statement }, { timeoutMs: 5_000 });
  // Known here at once (the relay's presence message says it too, to a window's socket).
  const others = (host.vouches ?? []).filter((v) => v.signer_device_key !== statement.signer_device_key);
  account.store.cacheHost(signedIn.account_id, { ...host, vouches: [...others, statement].slice(-16) }, Date.now());
}

/**
 * Opens the approver's bundle once this computer is approved, and vouches back for the approver; the
 * outcome is kept in the database. Done when first needed (a host to take from the relay), and by a
 * computer about to enroll or link a host of its own: that host trusts this computer first, and
 * the approver only through what this computer signs (relay/PROTOCOL.md "Trust follows the chain").
 */
export async function settleHostTrust(account: RelayAccount): Promise<HostKeysFrom> {
  return settle(account);
}

/**
 * Whether this computer still owes its trust a step that needs the relay: its approver's bundle
 * not opened yet (an approval code kept: approved or not, settle asks), or opened without the vouch
 * back made.
 * A vouch that failed (the relay dropped at that moment) leaves it so; the core tries again when it
 * next reaches the relay (AccountHosts), not only at the next enrollment token or host lookup.
 */
export function trustOwed(account: RelayAccount): boolean {
  const signedIn = account.stored();
  if (signedIn === undefined) return false;
  const trust = account.store.trust(signedIn.account_id);
  if (trust === undefined) return false;
  if (trust.host_trust === 'bundle') return trust.vouched_back_at === null;
  // Still waiting, as far as this computer knows (its record of its own status may lag: the
  // relay's word is asked in settle, one call when no bundle is there yet).
  return trust.host_trust === null && trust.approval_code !== null;
}

/**
 * This computer checked its approver's key through the approval code (the bundle opened with it):
 * it endorses that key, signed, so that a host that pinned this computer but never met the approver
 * lets the approver in, and what the approver endorsed. Nothing is vouched for on the relay's word:
 * a computer approved without a code never gets here. An approver revoked or gone meanwhile is owed
 * nothing; any other refusal is an error (the trust is not settled, so it is tried again).
 */
async function vouchBack(account: RelayAccount, approverKey: string, issuedAt: number): Promise<void> {
  const signedIn = account.stored()!;
  const listed = await account.call('devices.list', {});
  const approver = listed.devices.find((d) => d.public_key === approverKey);
  if (approver === undefined || approver.status === 'revoked') return;
  const statement = makeStatement(account.signer, {
    kind: 'endorse',
    account_id: signedIn.account_id,
    subject_device_key: approverKey,
    subject_name: approver.name,
    // The same moment on every try (Ed25519 signs deterministically): a vouch tried again after the
    // relay dropped it is the same statement, stored once by the relay and by hosts, however often a
    // relay that comes and goes makes this computer try.
    issued_at: issuedAt,
  });
  try {
    await account.call('devices.endorse', { device_id: approver.device_id, statement });
  } catch (error) {
    if (isHangarError(error) && error.code === 'E_AUTH_DEVICE_REVOKED') return;
    throw error;
  }
}

async function settle(account: RelayAccount): Promise<HostKeysFrom> {
  const signedIn = account.stored();
  if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', 'signed out while linking; sign in again');
  const trust = account.store.trust(signedIn.account_id);
  if (trust === undefined) return 'own';
  if (trust.host_trust === 'bundle' && trust.vouched_back_at === null) {
    // Settled before computers vouched back: the bundle's first device key is the approver's own
    // (approve() puts it first), checked through the code when the bundle opened.
    const approver = account.store.trustedKeys(signedIn.account_id, 'device')[0];
    if (approver !== undefined) await vouchBack(account, approver.key, trust.updated_at);
    account.store.noteVouchedBack(signedIn.account_id, Date.now());
  }
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
  await vouchBack(account, opened.approver_device_key, trust.updated_at); // when the code was made
  account.store.noteVouchedBack(signedIn.account_id, now);
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
