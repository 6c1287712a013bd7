import { formatRoundTrip, HangarError, type HostView } from '@hangar/shared';
import type { Command } from 'commander';
import { withApi } from '../run.js';
import { ago, printJson, table, visibleText } from '../output.js';

export function registerHosts(program: Command): void {
  const hosts = program
    .command('hosts')
    .description('add, list, rename and remove hosts: paired with this computer, or enrolled in your account');

  hosts
    .command('add')
    .description('pair with a host using the one-time code from `hangar-agent pair` on that host')
    .argument('<name>', 'a short name for the host, e.g. mini')
    .argument('<address>', 'host:port of its agent, e.g. mini.tailnet:7070 (TLS is implied; no scheme)')
    .requiredOption('--code <code>', 'pairing code printed by `hangar-agent pair` (valid 10 minutes, single use)')
    .action((name: string, address: string, options: { code: string }) =>
      withApi(async (api) => {
        const { host } = await api.call('hosts.add', { name, address, code: options.code });
        const info = host.info;
        if (!info) throw new HangarError('E_INTERNAL', `paired with "${host.name}" but it did not say what it is`);
        process.stdout.write(
          `paired with "${host.name}" (${visibleText(`${info.hostname}, ${info.os}/${info.arch}, agent ${info.agent_version}`)})\n` +
            `pinned host key ${host.agent_key.slice(0, 16)}… and TLS certificate ${host.cert_fingerprint.slice(0, 23)}…\n`,
        );
      }),
    );

  hosts
    .command('ls')
    .description(
      'every host: paired here and in your account (one line when both): online or not, last seen, how it is reached',
    )
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        // probe: this command's own core keeps no links, so it links to each paired host now (≤ 3 s).
        const list = (await api.call('hosts.list', { probe: true })).hosts;
        if (options.json) {
          return printJson(
            list.map((h) => ({
              name: h.name,
              status: statusWords(h),
              link: h.status,
              last_seen: h.last_seen,
              via: h.via,
              rtt_ms: h.rtt_ms ?? null,
              address: h.address,
              embedded: h.embedded,
              agent_key: h.agent_key,
              cert_fingerprint: h.cert_fingerprint,
              added_at: h.added_at,
              account: h.account,
              keys_from_relay: h.keys_from_relay ?? false,
              error: h.error,
              agent_version: h.info?.agent_version ?? null,
              update: h.info?.update ?? null,
            })),
          );
        }
        if (list.length === 0) {
          process.stdout.write(
            'no hosts yet: run `npm start` for this machine, `hangar hosts add <name> <address> --code <code>`, ' +
              'or enroll one in your account with `hangar hosts enroll-token --name <name>`\n',
          );
          return;
        }
        const now = Date.now();
        process.stdout.write(
          table(
            ['NAME', 'STATUS', 'LAST SEEN', 'VIA', 'RTT', 'ADDRESS'],
            list.map((h) => [
              h.name + (h.embedded ? ' (this machine)' : '') + (h.keys_from_relay ? " (keys: the relay's word)" : ''),
              statusWords(h),
              statusWords(h).startsWith('online') ? 'now' : h.last_seen === null ? '-' : ago(h.last_seen, now),
              h.via,
              roundTrip(h.rtt_ms),
              h.address || '-',
            ]),
          ),
        );
        // Updates the hosts' agents know of: after the table, with the command that applies one.
        for (const h of list) {
          const update = h.info?.update;
          if (!update?.available || !update.latest) continue;
          process.stdout.write(
            visibleText(
              `${h.name}: hangar-agent ${update.latest} is available (${update.channel}; it runs ${update.current}); ` +
                'on that host run: hangar-agent update',
            ) + '\n',
          );
        }
        // Why a host is down: after the table, where it does not break the columns.
        for (const h of list) {
          if (h.status !== 'online' && h.error) process.stderr.write(`hangar: ${h.name}: ${visibleText(h.error)}\n`);
        }
      }),
    );

  hosts
    .command('enroll-token')
    .description('print the one line to run on a host to enroll it in your account (valid 15 minutes, once)')
    .requiredOption('--name <name>', 'what to call the host, e.g. mini')
    .option(
      '--install',
      'print the line for a host without the agent: it installs hangar-agent as a service and enrolls it',
    )
    .action((options: { name: string; install?: boolean }) =>
      withApi(async (api) => {
        const made = await api.call('hosts.enroll_token', { name: options.name });
        // stdout is the line alone, so `$(hangar hosts enroll-token --name mini)` is the command.
        process.stdout.write(`${options.install ? made.install_command : made.command}\n`);
        process.stderr.write(
          `run that line on the host (valid until ${new Date(made.expires_at).toLocaleTimeString()}, once` +
            (options.install
              ? '; it needs Node.js 20+ there); the agent it installs then comes online here\n'
              : '; with npm there, put npx in front); its `hangar-agent serve` then comes online here\n'),
        );
      }),
    );

  hosts
    .command('rename')
    .description('rename a host on this computer (its keys, sessions and jobs are unchanged)')
    .argument('<name>')
    .argument('<new-name>')
    .action((name: string, newName: string) =>
      withApi(async (api) => {
        await api.call('hosts.rename', { name, new_name: newName });
        process.stdout.write(`renamed "${name}" to "${newName}"\n`);
      }),
    );

  hosts
    .command('rm')
    .description('forget a host and its pinned keys (a host of your account: remove it from the account too)')
    .argument('<name>')
    .action((name: string) =>
      withApi(async (api) => {
        const { from_account } = await api.call('hosts.remove', { name });
        process.stdout.write(`removed "${name}"${from_account ? ' here and from your account' : ''}\n`);
      }),
    );
}

/** One word or two for a host's state: its link here, else what the account's relay says. */
export function statusWords(host: HostView): string {
  const relayDown = host.account?.presence === 'relay_unreachable';
  if (host.status === 'online') return relayDown ? 'online, relay unreachable' : 'online';
  if (relayDown) return 'relay unreachable';
  if (host.status === 'connecting') return 'connecting';
  if (host.account?.presence === 'online') return host.error ? 'online, not linked' : 'online';
  return 'offline';
}

/** The link's round trip as the table shows it: tenths below 10 ms (a LAN's 0.4 ms is not "0 ms"). */
function roundTrip(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : formatRoundTrip(ms);
}
