import { HangarError, InviteToken } from '@hangar/shared';
import type { Command } from 'commander';
import { printJson, table, visibleText } from '../output.js';
import { confirm } from '../prompt.js';
import { params, passwordFrom, report, type SignInOptions } from './account.js';
import { withApi } from '../run.js';

/**
 * hangar team ls | invite | join | rm | withdraw: the people of a Team account (relay/PROTOCOL.md "Team
 * members"). Removing a person revokes each of their devices with a statement this computer signs,
 * as `hangar devices revoke` does: the relay holds no trust, hosts verify the revocations.
 */
export function registerTeam(program: Command): void {
  const team = program
    .command('team')
    .description(
      "the account's people: list them and the invitations waiting, invite, join with an invitation, remove, withdraw",
    );

  team
    .command('ls')
    .description('the members of the account and (for its owner) the invitations waiting to be accepted')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        const listed = await api.call('account.team', {});
        if (options.json) return printJson(listed);
        const joined = listed.members.filter((m) => m.status === 'active');
        process.stdout.write(
          table(
            ['EMAIL', 'ROLE', 'JOINED'],
            joined.map((m) => [
              visibleText(m.email),
              m.role,
              m.joined_at === null ? '-' : new Date(m.joined_at).toISOString().slice(0, 10),
            ]),
          ),
        );
        if (listed.invites === null) return; // a member: invitations are the owner's
        if (listed.invites.length === 0) {
          process.stdout.write('no invitations waiting (hangar team invite <email> makes one)\n');
          return;
        }
        process.stdout.write(
          '\n' +
            table(
              ['INVITED', 'EXPIRES'],
              listed.invites.map((i) => [visibleText(i.email), new Date(i.expires_at).toISOString()]),
            ),
        );
      }),
    );

  team
    .command('invite')
    .description(
      'invite someone by email: prints the invitation (7 days) for you to give them; the relay sends no mail',
    )
    .argument('<email>', 'their email: they sign in with it and a password of their own')
    .option('--json', 'print JSON')
    .action((email: string, options: { json?: boolean }) =>
      withApi(async (api) => {
        const invite = await api.call('account.invite', { email });
        if (options.json) return printJson(invite);
        process.stdout.write(
          `invited ${visibleText(invite.email)} until ${new Date(invite.expires_at).toISOString()}.\n` +
            'Give them this line to run (it is a secret: anyone holding it may join as them, once):\n' +
            `  ${visibleText(invite.join_command)}\n` +
            '(in the window: Join a team…, and paste it.) Their computer then waits for approval: approve it\n' +
            'with hangar devices approve <name> and the approval code it shows them. hangar team withdraw takes it back.\n',
        );
      }),
    );

  team
    .command('join')
    .description(
      'join a Team account with the invitation its owner gave you: choose a password; this computer then waits for approval by a computer of the team',
    )
    .argument('<invitation>', 'the inv1_… token (hangar team invite printed the whole line)')
    .requiredOption('--relay <url>', "the team's relay, e.g. https://relay.example.com")
    .requiredOption('--email <email>', 'your email address: the one you were invited as')
    .option(
      '--password-stdin',
      'read the new password from stdin (scripts); otherwise it is asked for twice, not echoed',
    )
    .option('--device-name <name>', 'what the account calls this computer (default: its host name)')
    .option('--json', 'print the account status as JSON')
    .action((invitation: string, options: SignInOptions) =>
      withApi(async (api) => {
        // Checked here too, so a mistyped token is said before a password is asked for.
        const token = InviteToken.safeParse(invitation.trim());
        if (!token.success) {
          throw new HangarError(
            'E_BAD_REQUEST',
            `invitation: ${token.error.issues[0]?.message ?? 'not an invitation'}; copy it whole from what hangar team invite printed`,
          );
        }
        const password = await passwordFrom(options, true);
        const status = await api.call('account.join', { ...params(options, password), invite_token: token.data });
        if (!options.json) process.stdout.write(`joined the team account as ${visibleText(status.account!.email)}\n`);
        report(status, options.json);
      }),
    );

  team
    .command('rm')
    .description(
      'remove a member: revokes each of their devices with a statement this computer signs (hosts refuse them), ends their logins and password',
    )
    .argument('<email>', 'the member (hangar team ls)')
    .option('--yes', 'do not ask for confirmation')
    .action((email: string, options: { yes?: boolean }) =>
      withApi(async (api) => {
        const { members } = await api.call('account.team', {});
        const member = members.find((m) => m.email === email && m.status === 'active');
        // The owner: the relay refuses (an account keeps its owner), saying so; nothing to confirm.
        if (member?.role === 'owner') await api.call('account.remove_member', { email });
        if (member === undefined) {
          throw new HangarError(
            'E_NOT_FOUND',
            `${email} is not a member of this account (hangar team ls lists them; an invitation is withdrawn with hangar team withdraw)`,
          );
        }
        const { devices } = await api.call('devices.list', {});
        const theirs = devices.filter((d) => d.member_email === email && d.status !== 'revoked');
        const named = theirs.map((d) => `"${visibleText(d.name)}" (${d.fingerprint})`).join(', ');
        if (!options.yes) {
          const question =
            `Remove ${visibleText(email)} from the account? ` +
            (theirs.length > 0
              ? `This revokes their devices ${named}: every host of the account refuses them.`
              : 'They have no device left to revoke.');
          if (!(await confirm(question, 'pass --yes to remove them'))) {
            process.stderr.write('not removed; nothing was changed\n');
            return;
          }
        }
        const removed = await api.call('account.remove_member', { email });
        process.stdout.write(`removed ${visibleText(removed.email)}: their password no longer signs in\n`);
        for (const d of removed.revoked) {
          process.stdout.write(
            `revoked "${visibleText(d.name)}": hosts refuse it from now on and close its open links\n`,
          );
        }
        for (const d of removed.deleted) {
          process.stdout.write(`deleted "${visibleText(d.name)}" (it was never approved)\n`);
        }
      }),
    );

  team
    .command('withdraw')
    .description('take back an invitation not yet accepted: its token is refused from now on')
    .argument('<email>', 'whom it invited (hangar team ls)')
    .action((email: string) =>
      withApi(async (api) => {
        await api.call('account.withdraw_invite', { email });
        process.stdout.write(`withdrew the invitation of ${visibleText(email)}; it no longer lets anyone join\n`);
      }),
    );
}
