import { HangarError, type AccountStatus } from '@hangar/shared';
import type { Command } from 'commander';
import { printJson, visibleText } from '../output.js';
import { promptHidden, readStdin } from '../prompt.js';
import { withApi } from '../run.js';

interface SignInOptions {
  relay: string;
  email: string;
  passwordStdin?: boolean;
  deviceName?: string;
  json?: boolean;
}

/** hangar signup | login | logout | account: this computer's account on a relay (relay/PROTOCOL.md). */
export function registerAccount(program: Command): void {
  const signIn = (name: 'signup' | 'login', description: string) =>
    program
      .command(name)
      .description(description)
      .requiredOption('--relay <url>', 'the relay, e.g. https://relay.example.com')
      .requiredOption('--email <email>', 'your email address')
      .option('--password-stdin', 'read the password from stdin (scripts); otherwise it is asked for, not echoed')
      .option('--device-name <name>', 'what the account calls this computer (default: its host name)')
      .option('--json', 'print the account status as JSON');

  signIn('signup', 'make an account on a relay; this computer becomes its first, trusted device').action(
    (options: SignInOptions) =>
      withApi(async (api) => {
        const password = await passwordFrom(options, true);
        const status = await api.call('account.signup', params(options, password));
        report(status, options.json);
      }),
  );

  signIn('login', 'sign in to an account; a new computer waits until a trusted one approves it').action(
    (options: SignInOptions) =>
      withApi(async (api) => {
        const password = await passwordFrom(options, false);
        const status = await api.call('account.login', params(options, password));
        report(status, options.json);
      }),
  );

  program
    .command('logout')
    .description('sign out here and end this login at the relay; paired hosts stay paired')
    .action(() =>
      withApi(async (api) => {
        const { relay_told } = await api.call('account.logout', {});
        process.stdout.write(
          relay_told
            ? 'signed out\n'
            : 'signed out here; the relay could not be reached to end the login there (it ends by itself within 30 days)\n',
        );
      }),
    );

  program
    .command('account')
    .description("this computer's account: relay, email, this device's status and fingerprint")
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        const status = await api.call('account.status', {});
        if (options.json) return printJson(status);
        if (status.account === null) {
          process.stdout.write('not signed in; hangar signup or hangar login --relay <url> --email <email>\n');
          return;
        }
        report(status, false);
        if (status.relay === 'unreachable') {
          process.stdout.write(`relay unreachable: ${visibleText(status.error ?? '')}\n`);
        }
      }),
    );
}

function params(options: SignInOptions, password: string) {
  return {
    relay_url: options.relay,
    email: options.email,
    password,
    ...(options.deviceName !== undefined ? { device_name: options.deviceName } : {}),
  };
}

async function passwordFrom(options: SignInOptions, twice: boolean): Promise<string> {
  if (options.passwordStdin) return readStdin();
  const password = await promptHidden('Password: ', '--password-stdin');
  if (twice && (await promptHidden('Password again: ', '--password-stdin')) !== password) {
    throw new HangarError('E_BAD_REQUEST', 'password: the two passwords differ; nothing was changed');
  }
  return password;
}

function report(status: AccountStatus, json: boolean | undefined): void {
  if (json) return printJson(status);
  const account = status.account!;
  const device = account.device;
  const standing =
    device.status === 'pending'
      ? `waiting for approval: on a computer already in the account run\n  hangar devices approve "${device.name}"\nand check that it shows the fingerprint above`
      : device.status === 'revoked'
        ? 'revoked: hosts refuse it'
        : device.status === 'first'
          ? "trusted (the account's first device)"
          : 'trusted (approved by another device)';
  process.stdout.write(
    `signed in to ${account.relay_url} as ${account.email}\n` +
      `this device: ${visibleText(device.name)} (${device.device_id})\n` +
      `fingerprint: ${device.fingerprint}\n` +
      `status: ${standing}\n`,
  );
}
