import {
  HangarError,
  HostName,
  deviceFingerprint,
  makeStatement,
  sealApprovalBundle,
  tagMatches,
  type ApprovalBundle,
  type DeviceEntry,
  type DeviceView,
  type HostRecord,
  type RelayResult,
} from '@hangar/shared';
import { NOT_SIGNED_IN, type RelayAccount } from './relay-account.js';

/**
 * The account's devices (relay/PROTOCOL.md "More devices"): listed with their fingerprints and who
 * approved each; approved and revoked by statements this computer signs, which hosts verify. The
 * relay only carries them.
 */
export class AccountDevices {
  constructor(
    private readonly account: RelayAccount,
    /** The hosts this computer pinned (its registry): what it hands a computer it approves. */
    private readonly pinnedHosts: () => HostRecord[],
    private readonly now: () => number = Date.now,
  ) {}

  async list(options: { timeoutMs?: number } = {}): Promise<DeviceEntry[]> {
    const listed = await this.account.call('devices.list', {}, options);
    const mine = listed.devices.find((d) => d.device_id === listed.this_device);
    if (mine !== undefined) this.account.noteOwnStatus(mine.status);
    return devicesFrom(listed);
  }

  /**
   * Endorses a device of the account (relay/PROTOCOL.md "More devices: the approval code"): only
   * when `code` (what the user typed from the new device's screen) made the tag the relay hands
   * over for the key it holds, so a relay that swapped that key gets nothing signed; then seals
   * for the new device, with the code, the hosts and device keys this computer trusts. `code` null
   * (--yes): no check and no bundle.
   */
  async approve(ref: string, code: string | null): Promise<DeviceEntry> {
    const { device, raw } = await this.find(ref);
    if (device.this_device) throw new HangarError('E_BAD_REQUEST', 'device: a device cannot approve itself');
    if (device.status === 'revoked') {
      throw new HangarError(
        'E_FORBIDDEN',
        `"${device.name}" was revoked; a revoked device stays revoked (log in from it as a new device)`,
      );
    }
    const signedIn = this.account.stored();
    if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    let bundle: ApprovalBundle | undefined;
    if (code !== null) {
      const offered = await this.account.call('devices.tag', { device_id: raw.device_id });
      if (offered.tag === null) {
        throw new HangarError(
          'E_FORBIDDEN',
          `"${device.name}" offered no approval code (it signed in with an older Hangar?): sign in on it again. Nothing was approved`,
        );
      }
      if (
        offered.public_key !== raw.public_key ||
        !tagMatches(code, raw.public_key, signedIn.account_id, offered.tag)
      ) {
        throw new HangarError(
          'E_FORBIDDEN',
          `the code given is not the one "${device.name}" shows for the key the relay holds for it. ` +
            'Type it again from that computer (hangar account on it shows it); if it still does not match, ' +
            'the relay may have swapped its key. Nothing was approved',
        );
      }
      bundle = sealApprovalBundle(code, {
        account_id: signedIn.account_id,
        approver_device_key: this.account.publicKey,
        device_key: raw.public_key,
        issued_at: this.now(),
        devices: this.account.trustedDeviceKeys(),
        hosts: this.pinnedHosts().flatMap((h) =>
          h.embedded || !HostName.safeParse(h.name).success
            ? []
            : [
                {
                  name: h.name,
                  host_key: h.agent_key,
                  cert_fingerprint: h.cert_fingerprint.replace(/:/g, '').toLowerCase(),
                },
              ],
        ),
      });
    }
    await this.state('endorse', raw, bundle);
    return (await this.find(device.device_id)).device;
  }

  async revoke(ref: string): Promise<DeviceEntry> {
    const { device, raw } = await this.find(ref);
    if (device.this_device) {
      throw new HangarError('E_BAD_REQUEST', 'device: this is this computer; revoke it from another trusted device');
    }
    if (device.status === 'revoked') return device;
    await this.state('revoke', raw);
    return (await this.find(device.device_id)).device;
  }

  /**
   * Removes a member of the account (relay/PROTOCOL.md "Team members: removing a person"): the
   * relay holds no trust, so this computer signs a revocation of each of their devices not revoked
   * yet, which the relay stores and hosts verify, and the relay then forgets the membership.
   */
  async removeMember(email: string): Promise<RelayResult<'account.remove_member'>> {
    const signedIn = this.account.stored();
    if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    const listed = await this.account.call('devices.list', {});
    const revocations = listed.devices
      .filter((d) => d.member_email === email && d.status !== 'revoked')
      .map((d) => ({
        device_id: d.device_id,
        statement: makeStatement(this.account.signer, {
          kind: 'revoke',
          account_id: signedIn.account_id,
          subject_device_key: d.public_key,
          subject_name: d.name,
          issued_at: this.now(),
        }),
      }));
    return this.account.call('account.remove_member', { email, revocations });
  }

  /** A DeviceView from the relay's socket, as clients see devices. */
  entryOf(device: DeviceView): DeviceEntry {
    return {
      device_id: device.device_id,
      name: device.name,
      status: device.status,
      fingerprint: deviceFingerprint(device.public_key),
      created_at: device.created_at,
      last_seen: device.last_seen,
      this_device: device.public_key === this.account.publicKey,
      approved_by: null,
      revoked_by: null,
    };
  }

  private async state(kind: 'endorse' | 'revoke', raw: DeviceView, bundle?: ApprovalBundle): Promise<void> {
    const signedIn = this.account.stored();
    if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    const statement = makeStatement(this.account.signer, {
      kind,
      account_id: signedIn.account_id,
      subject_device_key: raw.public_key,
      subject_name: raw.name,
      issued_at: this.now(),
    });
    if (kind === 'endorse') {
      await this.account.call('devices.endorse', {
        device_id: raw.device_id,
        statement,
        ...(bundle ? { bundle } : {}),
      });
    } else {
      await this.account.call('devices.revoke', { device_id: raw.device_id, statement });
    }
  }

  private async find(ref: string): Promise<{ device: DeviceEntry; raw: DeviceView }> {
    const listed = await this.account.call('devices.list', {});
    const entries = devicesFrom(listed);
    const matches = entries.filter((d) => d.device_id === ref || d.name === ref);
    if (matches.length === 0) {
      throw new HangarError(
        'E_NOT_FOUND',
        `no device "${ref}" in this account (known: ${entries.map((d) => d.name).join(', ')}); hangar devices ls lists them`,
      );
    }
    if (matches.length > 1) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `device: ${matches.length} devices are named "${ref}"; give its id instead (${matches.map((d) => d.device_id).join(', ')})`,
      );
    }
    const device = matches[0]!;
    return { device, raw: listed.devices.find((d) => d.device_id === device.device_id)! };
  }
}

/** The relay's devices as clients see them: fingerprints, and who approved or revoked each. */
function devicesFrom(listed: RelayResult<'devices.list'>): DeviceEntry[] {
  const byKey = new Map(listed.devices.map((d) => [d.public_key, d]));
  const signer = (key: string | null) =>
    key === null ? null : { name: byKey.get(key)?.name ?? 'unknown device', fingerprint: deviceFingerprint(key) };
  return listed.devices.map((d) => ({
    device_id: d.device_id,
    name: d.name,
    status: d.status,
    fingerprint: deviceFingerprint(d.public_key),
    created_at: d.created_at,
    last_seen: d.last_seen,
    this_device: d.device_id === listed.this_device,
    approved_by: signer(d.endorsed_by),
    revoked_by: signer(d.revoked_by),
    ...(d.needs_approval_again !== undefined ? { needs_approval_again: d.needs_approval_again } : {}),
    ...(d.member_email !== undefined ? { member_email: d.member_email } : {}),
  }));
}
