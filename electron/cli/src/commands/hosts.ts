import { HangarError } from '@hangar/shared';
import type { Command } from 'commander';
import { withApi } from '../run.js';
import { printJson, table, visibleText } from '../output.js';

export function registerHosts(program: Command): void {
  const hosts = program
    .command('hosts')
    .description('add, list, rename and remove the hosts this computer is paired with');

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
    .description('list paired hosts')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        // The pairing records: what was pinned for each host, and when.
        const list = (await api.call('hosts.list', {})).hosts.map((h) => ({
          name: h.name,
          address: h.address,
          agent_key: h.agent_key,
          cert_fingerprint: h.cert_fingerprint,
          embedded: h.embedded,
          added_at: h.added_at,
        }));
        if (options.json) return printJson(list);
        if (list.length === 0) {
          process.stdout.write(
            'no hosts yet: run `npm start` for this machine, or `hangar hosts add <name> <address> --code <code>`\n',
          );
          return;
        }
        process.stdout.write(
          table(
            ['NAME', 'ADDRESS', 'KEY', 'ADDED'],
            list.map((h) => [
              h.name + (h.embedded ? ' (this machine)' : ''),
              h.address,
              h.agent_key.slice(0, 12) + '…',
              new Date(h.added_at).toISOString(),
            ]),
          ),
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
    .description('forget a host and its pinned keys')
    .argument('<name>')
    .action((name: string) =>
      withApi(async (api) => {
        await api.call('hosts.remove', { name });
        process.stdout.write(`removed "${name}"\n`);
      }),
    );
}
