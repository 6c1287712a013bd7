import { createCoreLogger, nodePlatform } from '@hangar/desktop/core';
import { HangarError, PaidPlanId, toHangarError, type AccountStatus, type BillingStatus } from '@hangar/shared';
import type { Command } from 'commander';
import { printJson, visibleText } from '../output.js';
import { promptHidden, readStdin } from '../prompt.js';
import { withApi } from '../run.js';

export interface SignInOptions {
  relay: string;
  email: string;
  passwordStdin?: boolean;
  deviceName?: string;
  json?: boolean;
}

/** hangar signup | login | logout | account: this computer's account on a relay (relay/PROTOCOL.md). */
export function registerAccount(program: Command): void {
  const signIn = (name: 'signup' | 'login', method: 'account.signup' | 'account.login', description: string) =>
    program
      .command(name)
      .description(description)
      .requiredOption('--relay <url>', 'the relay, e.g. https://relay.example.com')
      .requiredOption('--email <email>', 'your email address')
      .option('--password-stdin', 'read the password from stdin (scripts); otherwise it is asked for, not echoed')
      .option('--device-name <name>', 'what the account calls this computer (default: its host name)')
      .option('--json', 'print the account status as JSON')
      .action((options: SignInOptions) =>
        withApi(async (api) => {
          // A new password is asked for twice.
          const password = await passwordFrom(options, name === 'signup');
          const status = await api.call(method, params(options, password));
          report(status, options.json);
        }),
      );

  signIn('signup', 'account.signup', 'make an account on a relay; this computer becomes its first, trusted device');
  signIn('login', 'account.login', 'sign in to an account; a new computer waits until a trusted one approves it');

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

  const account = program
    .command('account')
    .description(
      "this computer's account: relay, email, this device's status and fingerprint; the plan, trial, build minutes and next invoice",
    )
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        const status = await api.call('account.status', {});
        if (status.account === null) {
          if (options.json) return printJson({ ...status, billing: null });
          process.stdout.write('not signed in; hangar signup or hangar login --relay <url> --email <email>\n');
          return;
        }
        // The plan comes from the relay; without it the rest still shows, saying why it is missing.
        const billing = await api.call('account.billing', {}).then(
          (value) => ({ value, error: null }),
          (error: unknown) => ({ value: null, error: toHangarError(error).message }),
        );
        if (options.json) return printJson({ ...status, billing: billing.value, billing_error: billing.error });
        report(status, false);
        if (status.relay === 'unreachable') {
          process.stdout.write(`relay unreachable: ${visibleText(status.error ?? '')}\n`);
        }
        if (billing.value !== null) process.stdout.write(billingText(billing.value));
        else process.stdout.write(`plan: unknown (${visibleText(billing.error ?? '')})\n`);
      }),
    );

  account
    .command('upgrade')
    .description('buy Pro ($20/month, 300 build minutes included) or Team ($200/month, unlimited) at Stripe Checkout')
    .argument('<plan>', 'pro or team')
    .option('--no-open', 'print the Checkout URL instead of opening it in the browser')
    .action((plan: string, options: { open: boolean }) =>
      withApi(async (api) => {
        const { url } = await api.call('account.checkout', { plan: paidPlan(plan) });
        await openOrPrint(url, options.open, 'Stripe Checkout');
      }),
    );

  account
    .command('manage')
    .description("Stripe's customer portal: change plan or card, cancel, invoices")
    .option('--no-open', 'print the portal URL instead of opening it in the browser')
    .action((options: { open: boolean }) =>
      withApi(async (api) => {
        const { url } = await api.call('account.portal', {});
        await openOrPrint(url, options.open, "Stripe's customer portal");
      }),
    );
}

function paidPlan(plan: string): PaidPlanId {
  const parsed = PaidPlanId.safeParse(plan.toLowerCase());
  if (!parsed.success) throw new HangarError('E_BAD_REQUEST', `plan ${plan}: expected pro or team`);
  return parsed.data;
}

async function openOrPrint(url: string, open: boolean, what: string): Promise<void> {
  if (!open) {
    process.stdout.write(`${url}\n`);
    return;
  }
  await nodePlatform(createCoreLogger()).openExternal(url);
  process.stdout.write(`opened ${what} in your browser; if it did not open, go to:\n${url}\n`);
}

const PLAN_NAMES: Record<BillingStatus['plan'], string> = {
  trial: 'Trial (7 days of Pro)',
  pro: 'Pro',
  team: 'Team',
  none: 'none (the trial has ended)',
  unmetered: 'unmetered (billing is off on this relay)',
};

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** What `hangar account` prints about billing: the same facts as the app's Account page. */
export function billingText(b: BillingStatus): string {
  const lines: string[] = [];
  if (b.billing === 'off') {
    lines.push(`plan: ${PLAN_NAMES.unmetered}: build minutes are not counted or limited`);
    return lines.join('\n') + '\n';
  }
  const sub = b.subscription;
  const planLine =
    b.plan === 'trial'
      ? `plan: ${PLAN_NAMES.trial}, ${b.trial.days_left} day${b.trial.days_left === 1 ? '' : 's'} left (ends ${day(b.trial.ends_at)})`
      : b.plan === 'none'
        ? `plan: ${sub === null ? `none: the trial ended ${day(b.trial.ends_at)}` : 'none: the subscription has ended'}`
        : `plan: ${PLAN_NAMES[b.plan]}${sub !== null && sub.status !== 'active' ? ` (${sub.status})` : ''}${sub?.cancel_at_period_end ? ', cancelled at the end of the period' : ''}`;
  lines.push(planLine);
  if (b.plan !== 'trial')
    lines.push(
      `trial: ${day(b.trial.started_at)} – ${day(b.trial.ends_at)}${b.trial.days_left === 0 ? ', ended' : ''}`,
    );
  const included = b.minutes.included === null ? 'unlimited' : `${b.minutes.included} included`;
  const over = b.minutes.overage > 0 ? `, ${b.minutes.overage} over (billed per minute)` : '';
  lines.push(
    `build minutes this period: ${b.minutes.used} used of ${included}${over} (${day(b.period.start)} – ${day(b.period.end)})`,
  );
  lines.push(`next invoice: ${b.next_invoice_at === null ? 'none' : day(b.next_invoice_at)}`);
  if (b.payment_failed) lines.push('payment failed: Stripe is retrying the card; fix it with hangar account manage');
  if (b.refusing !== null) lines.push(`build jobs refused: ${b.refusing.message}`);
  return lines.join('\n') + '\n';
}

/** The core's sign-in parameters from the command's options. */
export function params(options: SignInOptions, password: string) {
  return {
    relay_url: options.relay,
    email: options.email,
    password,
    ...(options.deviceName !== undefined ? { device_name: options.deviceName } : {}),
  };
}

/** The password from stdin (--password-stdin) or asked for unechoed; a new one (`twice`) is asked for twice. */
export async function passwordFrom(options: SignInOptions, twice: boolean): Promise<string> {
  if (options.passwordStdin) return readStdin();
  const password = await promptHidden('Password: ', '--password-stdin');
  if (twice && (await promptHidden('Password again: ', '--password-stdin')) !== password) {
    throw new HangarError('E_BAD_REQUEST', 'password: the two passwords differ; nothing was changed');
  }
  return password;
}

/** What signup, login and team join print: the account, this device and its standing (or JSON). */
export function report(status: AccountStatus, json: boolean | undefined): void {
  if (json) return printJson(status);
  const account = status.account!;
  const device = account.device;
  const standing =
    device.status === 'pending'
      ? `waiting for approval: on a computer already in the account run\n  hangar devices approve "${device.name}"\nand type this code there: ${device.approval_code ?? '(none: sign in again to make one)'}\n` +
        "(approved without it, with --yes, this computer takes the account's hosts' keys on the relay's word)"
      : device.status === 'revoked'
        ? 'revoked: hosts refuse it'
        : device.status === 'first'
          ? "trusted (the account's first device)"
          : device.host_keys_from === 'relay'
            ? "trusted (approved by another device without a code: its hosts' keys are the relay's word)"
            : 'trusted (approved by another device)';
  process.stdout.write(
    `signed in to ${account.relay_url} as ${account.email}\n` +
      `this device: ${visibleText(device.name)} (${device.device_id})\n` +
      `fingerprint: ${device.fingerprint}\n` +
      (device.approval_code ? `approval code: ${device.approval_code}\n` : '') +
      `status: ${standing}\n`,
  );
}
