import type { Command } from 'commander';
import { withCore } from '../run.js';
import { printJson, table, visibleText } from '../output.js';

export function registerHosts(program: Command): void {
  const hosts = program.command('hosts').description('add, list and remove the hosts this computer is paired with');

  hosts
    .command('add')
    .description('pair with a host using the one-time code from `hangar-agent pair` on that host')
    .argument('<name>', 'a short name for the host, e.g. mini')
    .argument('<address>', 'host:port of its agent, e.g. mini.tailnet:7070 (TLS is implied; no scheme)')
    .requiredOption('--code <code>', 'pairing code printed by `hangar-agent pair` (valid 10 minutes, single use)')
    .action((name: string, address: string, options: { code: string }) =>
      withCore(async (core) => {
        const { host, info } = await core.addHost({ name, address, code: options.code });
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
      withCore(async (core) => {
        const list = core.listHosts().map(({ status: _status, ...host }) => host);
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
    .command('rm')
    .description('forget a host and its pinned keys')
    .argument('<name>')
    .action((name: string) =>
      withCore(async (core) => {
        await core.removeHost(name);
        process.stdout.write(`removed "${name}"\n`);
      }),
    );
}
