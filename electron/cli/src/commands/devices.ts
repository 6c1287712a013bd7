import { HangarError, type CoreApi, type DeviceEntry } from '@hangar/shared';
import { Option, type Command } from 'commander';
import { ago, printJson, table, visibleText } from '../output.js';
import { ask } from '../prompt.js';
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
        // A device approved before whose approval no longer counts: the table alone reads "waiting".
        printNeedsApprovalAgain(list);
      }),
    );

  devices
    .command('approve')
    .description(
      'let a new device of the account into your hosts: checks the code it shows, signs an endorsement with this computer’s key and hands it your hosts’ keys',
    )
    .argument('<device>', 'its name or id (hangar devices ls)')
    .option(
      '--code <code>',
      'the approval code the new device shows (hangar login printed it; hangar account there shows it)',
    )
    .addOption(new Option('--fingerprint <code>', 'the old name of --code').hideHelp())
    .option(
      '--yes',
      "approve without a code (scripts only: no check that the relay did not swap the device's key, and the new device takes your hosts' keys on the relay's word)",
    )
    .action((device: string, options: { code?: string; fingerprint?: string; yes?: boolean }) =>
      withApi(async (api) => {
        const given = options.code ?? options.fingerprint;
        const code = given ?? (options.yes ? null : await typedCode(api, device));
        const approved = await api.call('devices.approve', { device, code });
        process.stdout.write(
          `approved "${visibleText(approved.device.name)}" (${approved.device.fingerprint}); hosts let it in once they see the endorsement\n` +
            (code === null
              ? "approved without a code: it takes the account's hosts' keys on the relay's word (hangar hosts ls there marks them)\n"
              : 'it was handed the keys of the hosts this computer pinned, sealed with its code\n'),
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
        // The computers it approved (and those they approved) that no other chain reaches are shut
        // out with it: say which, and how to let in again those that are yours.
        const { devices: list } = await api.call('devices.list', {});
        printNeedsApprovalAgain(list);
      }),
    );
}

/** Each device approved before that waits for approval again: who approved it, and what to do. */
function printNeedsApprovalAgain(list: DeviceEntry[]): void {
  for (const d of list) {
    if (d.needs_approval_again !== undefined) {
      process.stdout.write(`${visibleText(d.name)}: ${visibleText(d.needs_approval_again)}\n`);
    }
  }
}

/** Asks for the code the new device shows, naming the device the relay lists under that name. */
async function typedCode(api: CoreApi, ref: string): Promise<string> {
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
  process.stderr.write(`"${visibleText(device.name)}" (${device.device_id}) asks to join the account.\n`);
  const code = await ask(
    'Type the approval code it shows (hangar login printed it there; hangar account shows it again):',
    'pass --code with what the new device shows (or --yes to approve without one)',
  );
  if (code.trim() === '') throw new HangarError('E_BAD_REQUEST', 'not approved: no code was typed');
  return code;
}
