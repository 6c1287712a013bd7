import { HangarError, type CoreApi, type DeviceEntry } from '@hangar/shared';
import type { Command } from 'commander';
import { ago, printJson, table, visibleText } from '../output.js';
import { confirm } from '../prompt.js';
import { withApi } from '../run.js';

const STATUS_WORDS: Record<DeviceEntry['status'], string> = {
  first: 'trusted (first)',
  endorsed: 'trusted',
  pending: 'waiting for approval',
  revoked: 'revoked',
};

/** hangar devices ls | approve | revoke: the computers of the account (relay/PROTOCOL.md "More devices"). */
export function registerDevices(program: Command): void {
  const devices = program.command('devices').description("the account's devices: list, approve a new one, revoke one");

  devices
    .command('ls')
    .description("the account's devices with their fingerprints and who approved them")
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        const { devices: list } = await api.call('devices.list', {});
        if (options.json) return printJson(list);
        process.stdout.write(
          table(
            ['NAME', 'STATUS', 'FINGERPRINT', 'LAST SEEN', 'APPROVED BY', 'ID'],
            list.map((d) => [
              d.name + (d.this_device ? ' (this device)' : ''),
              STATUS_WORDS[d.status],
              d.fingerprint,
              d.last_seen === null ? '-' : ago(d.last_seen),
              d.approved_by ? `${d.approved_by.name} (${d.approved_by.fingerprint.slice(0, 9)}…)` : '-',
              d.device_id,
            ]),
          ),
        );
      }),
    );

  devices
    .command('approve')
    .description('let a new device of the account into your hosts: signs an endorsement with this computer’s key')
    .argument('<device>', 'its name or id (hangar devices ls)')
    .option(
      '--fingerprint <fingerprint>',
      'the fingerprint `hangar login` printed on the new device (no question asked)',
    )
    .option(
      '--yes',
      'approve without comparing fingerprints (scripts only: this skips the check that stops a relay from swapping the key)',
    )
    .action((device: string, options: { fingerprint?: string; yes?: boolean }) =>
      withApi(async (api) => {
        const fingerprint = options.fingerprint ?? (await comparedFingerprint(api, device, options.yes ?? false));
        const approved = await api.call('devices.approve', { device, fingerprint });
        process.stdout.write(
          `approved "${visibleText(approved.device.name)}" (${approved.device.fingerprint}); hosts let it in once they see the endorsement\n`,
        );
      }),
    );

  devices
    .command('revoke')
    .description('shut a device out: hosts refuse it from now on and close its open links')
    .argument('<device>', 'its name or id (hangar devices ls)')
    .action((device: string) =>
      withApi(async (api) => {
        const revoked = await api.call('devices.revoke', { device });
        process.stdout.write(`revoked "${visibleText(revoked.device.name)}"; hosts refuse it from now on\n`);
      }),
    );
}

/** Shows the fingerprint the relay holds for the device and asks whether the device shows the same. */
async function comparedFingerprint(api: CoreApi, ref: string, yes: boolean): Promise<string> {
  const { devices } = await api.call('devices.list', {});
  const matches = devices.filter((d) => d.device_id === ref || d.name === ref);
  if (matches.length === 0) {
    const known = devices.map((d) => d.name).join(', ');
    throw new HangarError(
      'E_NOT_FOUND',
      `no device "${ref}" in this account (known: ${known}); hangar devices ls lists them`,
    );
  }
  if (matches.length > 1) {
    throw new HangarError('E_BAD_REQUEST', `device: ${matches.length} devices are named "${ref}"; give its id instead`);
  }
  const device = matches[0]!;
  process.stderr.write(
    `"${visibleText(device.name)}" (${device.device_id}) asks to join with the key whose fingerprint is\n  ${device.fingerprint}\n`,
  );
  if (yes) return device.fingerprint;
  const same = await confirm(
    'Does that device show this same fingerprint (hangar login printed it; hangar account shows it again)?',
    'pass --fingerprint with what the new device printed (or --yes to skip the check)',
  );
  if (!same) {
    throw new HangarError(
      'E_FORBIDDEN',
      'not approved: the fingerprints differ (if the new device shows another one, the relay may have swapped its key)',
    );
  }
  return device.fingerprint;
}
