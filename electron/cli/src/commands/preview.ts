import {
  closeReasonError,
  HangarError,
  PreviewPort,
  parseOrThrow,
  type CoreApi,
  type CoreCallResult,
  type Disposable,
} from '@hangar/shared';
import type { Command } from 'commander';
import { ago, printJson, printNothingListed, reportUnreachable, table, withoutNullErrors } from '../output.js';
import { withApi } from '../run.js';

type HostPreviews = CoreCallResult<'previews.list'>['hosts'][number];

export function registerPreview(program: Command): void {
  const preview = program
    .command('preview')
    .description("serve a host's dev server (HTTP and WebSocket/HMR) on this computer");

  preview
    .command('ls')
    .description('list previews, and ports that listen but are not previews yet, on one host or every host')
    .argument('[host]', 'host name (default: all hosts)')
    .option('--json', 'print JSON')
    .action((host: string | undefined, options: { json?: boolean }) =>
      withApi(async (api) => {
        const { hosts: groups } = await api.call('previews.list', host !== undefined ? { host } : {});
        if (options.json) return printJson(withoutNullErrors(groups));
        printPreviews(groups);
        return reportUnreachable(groups);
      }),
    );

  preview
    .command('add')
    .description('make a port on the host a preview (only previews can be opened from here)')
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .argument('<port>', 'TCP port of the dev server on the host, e.g. 5173')
    .option('--label <text>', 'a name to show, e.g. web')
    .action((host: string, port: string, options: { label?: string }) =>
      withApi(async (api) => {
        const added = await api.call('previews.add', {
          host,
          port: parsePort(port),
          ...(options.label !== undefined ? { label: options.label } : {}),
        });
        const state = added.listening ? 'listening' : 'nothing listens there yet';
        process.stdout.write(
          `added preview of port ${added.port} on ${host} (${state}); open it with: hangar preview open ${host} ${added.port}\n`,
        );
      }),
    );

  preview
    .command('rm')
    .description('stop offering a port as a preview; its open connections are cut')
    .argument('<host>')
    .argument('<port>')
    .action((host: string, port: string) =>
      withApi(async (api) => {
        await api.call('previews.remove', { host, port: parsePort(port) });
        process.stdout.write(`removed preview of port ${port} on ${host}\n`);
      }),
    );

  preview
    .command('open')
    .description('serve a preview at http://localhost:<port>/ on this computer until Ctrl-C')
    .argument('<host>')
    .argument('<port>', 'the port on the host')
    .option('--local-port <n>', 'port on this computer (default: the same as on the host when free, else any)')
    .option('--browser', 'open the address in your browser')
    .action((host: string, port: string, options: { localPort?: string; browser?: boolean }) =>
      withApi(async (api) => {
        const remote = parsePort(port);
        const local = options.localPort !== undefined ? parsePort(options.localPort, '--local-port') : undefined;
        // Not remembered: served while this command runs, like ssh -L.
        const opened = await api.call('previews.open', {
          host,
          port: remote,
          ...(local !== undefined ? { local_port: local } : {}),
          remember: false,
        });
        process.stdout.write(`hangar: preview of ${host}:${remote} at ${opened.url} (Ctrl-C stops it)\n`);
        if (options.browser) {
          const { createCoreLogger, nodePlatform } = await import('@hangar/desktop/core');
          await nodePlatform(createCoreLogger()).openExternal(opened.url);
        }
        await untilStopped(api, host, remote, opened.url);
      }),
    );
}

function printPreviews(groups: HostPreviews[]): void {
  const rows = groups.flatMap((g) =>
    g.previews.map((p) => [
      g.host,
      String(p.port),
      p.label ?? '',
      p.listening ? 'yes' : 'no',
      p.local_url ?? '',
      ago(p.created_at),
    ]),
  );
  if (rows.length > 0) process.stdout.write(table(['HOST', 'PORT', 'LABEL', 'LISTENING', 'HERE', 'ADDED'], rows));
  else printNothingListed(groups, 'no previews', 'add one with: hangar preview add <host> <port>');
  const candidates = groups.flatMap((g) =>
    g.listening.map((l) => [g.host, String(l.port), l.address, l.process ?? '', l.pid === null ? '' : String(l.pid)]),
  );
  if (candidates.length > 0) {
    process.stdout.write('\nlistening, not previews (hangar preview add <host> <port>):\n');
    process.stdout.write(table(['HOST', 'PORT', 'ADDRESS', 'PROCESS', 'PID'], candidates));
  }
}

/**
 * Resolves on Ctrl-C or SIGTERM; the caller's withApi then closes the connection, which stops the
 * preview. Rejects, saying why, once it is no longer served here for another reason: the preview
 * was removed (here, in the window or from another device) or closed in the window, or the running
 * app that served it stopped. (It went on silently serving nothing, or exited 0 with the app.)
 */
function untilStopped(api: CoreApi, host: string, port: number, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const subscriptions: Disposable[] = [];
    const settle = (error?: HangarError) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      for (const subscription of subscriptions.splice(0)) void subscription.dispose();
      if (error) reject(error);
      else resolve();
    };
    const stop = () => settle();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    subscriptions.push(
      api.on('previews.changed', (event) => {
        if (event.host !== host) return;
        const preview = event.previews.find((p) => p.port === port);
        if (preview?.local_url === url) return;
        settle(
          new HangarError(
            'E_NOT_FOUND',
            preview
              ? `the preview of ${host}:${port} is no longer served here (closed in the window, or its host renamed); ${url} stopped`
              : `the preview of ${host}:${port} was removed (hangar preview rm, the window or another device); ${url} stopped`,
          ),
        );
      }),
      // The running app that served it stopped: withApi says so, and what to do.
      api.onDisconnect((reason) => settle(closeReasonError(reason))),
    );
  });
}

/** A TCP port argument: digits only (so `5173abc` is not quietly 5173), then the shared range check. */
export function parsePort(value: string, what = 'port'): number {
  if (!/^\d{1,5}$/.test(value)) {
    throw new HangarError('E_BAD_REQUEST', `${what} "${value}": expected a port number from 1 to 65535`);
  }
  return parseOrThrow(PreviewPort, Number(value), what);
}
