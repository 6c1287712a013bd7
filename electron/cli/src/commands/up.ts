import { CoreApiServer, EMBEDDED_HOST, EmbeddedAgent, HangarCore, LocalDoor, nodePlatform } from '@hangar/desktop/core';
import { HangarError } from '@hangar/shared';
import type { Command } from 'commander';
import { join } from 'node:path';
import { reportError } from '../exit-codes.js';
import { findElectron, launchElectron, startWebMode } from './ui.js';

const LOCAL = EMBEDDED_HOST;

export function registerUp(program: Command): void {
  program
    .command('up')
    .description(
      'run the local stack: an embedded agent for this machine, paired automatically as host "local", and the UI ' +
        '(an Electron window where Electron is installed, else served to a browser)',
    )
    .option('--listen <host:port>', 'where the embedded agent listens (loopback only)', '127.0.0.1:0')
    .option('--no-ui', 'run the agent only, without a window or web server')
    .option('--ui-port <n>', 'web mode: port on 127.0.0.1 (0: any free port)', '0')
    .action(async (options: { listen: string; ui: boolean; uiPort: string }) => {
      process.exitCode = await up(options.listen, options.ui ? Number(options.uiPort) : undefined);
    });
}

/** `uiPort` undefined: no UI (--no-ui). */
async function up(listen: string, uiPort: number | undefined): Promise<number> {
  if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(listen)) {
    return reportError(
      new HangarError(
        'E_BAD_REQUEST',
        `--listen ${listen}: the embedded agent listens on loopback only (e.g. 127.0.0.1:0)`,
      ),
    );
  }
  const core = await HangarCore.open();
  const agent = new EmbeddedAgent({
    core,
    listen,
    remedy:
      'See its messages above, and check this machine with: ' +
      `npx hangar-agent doctor --data ${join(core.home, 'agent')}; then run: npm start`,
  });
  let ui: { dispose(): Promise<void> | void } | undefined;
  let door: LocalDoor | undefined;
  let headlessApi: CoreApiServer | undefined;

  agent.onStarted(({ value: address, pid }) =>
    process.stdout.write(
      `hangar: local stack up — host "${LOCAL}" at ${address} (agent pid ${pid}; data in ${core.home})\n`,
    ),
  );
  agent.onRestarting(({ reason, delayMs, count, maxRestarts, windowMs }) =>
    process.stderr.write(
      `hangar: the embedded agent ${reason}; restarting it in ${(delayMs / 1000).toFixed(1)} s ` +
        `(restart ${count} of at most ${maxRestarts} in ${windowMs / 60_000} min)\n`,
    ),
  );
  agent.onFailed((error) => void stop(reportError(error)));

  let stopping = false;
  const stop = async (status: number): Promise<never> => {
    if (stopping) return new Promise<never>(() => undefined);
    stopping = true;
    // First, so that an agent already leaving on the same Ctrl-C is not restarted.
    const agentStopped = agent.dispose();
    await door?.dispose();
    await headlessApi?.dispose();
    await ui?.dispose();
    await agentStopped;
    await core.dispose();
    process.exit(status);
  };

  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    // The window first: it is useful at once (hosts, jobs history) and shows "local" connecting
    // while the embedded agent starts, instead of the user waiting for both in turn.
    if (uiPort !== undefined) ui = await startUi(core, uiPort, () => void stop(0));
    // hangar commands reach a running core over its local socket (issue 18): web mode's, or
    // Electron's own; with no UI at all, this process keeps the live links for them.
    if (uiPort === undefined) {
      headlessApi = liveApi(core);
      door = await LocalDoor.start({ api: headlessApi, home: core.home, logger: core.logger });
    }
    await agent.start();
    process.stdout.write(
      `hangar: try  npx hangar session new ${LOCAL} --name work -- bash  then  npx hangar attach ${LOCAL} work\n` +
        'hangar: Ctrl-C stops the local stack (sessions keep running in tmux)\n',
    );
  } catch (error) {
    return stop(reportError(error));
  }
  return new Promise<number>(() => undefined);
}

function liveApi(core: HangarCore): CoreApiServer {
  return new CoreApiServer(core, nodePlatform(core.logger));
}

/** The Electron window when its binary is installed, else web mode with the reason printed. */
async function startUi(
  core: HangarCore,
  port: number,
  onWindowClosed: () => void,
): Promise<{ dispose(): Promise<void> | void }> {
  const electron = process.env['HANGAR_NO_ELECTRON'] ? { missing: 'HANGAR_NO_ELECTRON is set' } : findElectron();
  if ('path' in electron) {
    const window = launchElectron(electron.path);
    process.stdout.write('hangar: opening the Hangar window (Electron)\n');
    window.once('exit', onWindowClosed);
    return {
      dispose: () => {
        window.off('exit', onWindowClosed);
        if (window.exitCode === null) window.kill('SIGTERM');
      },
    };
  }
  return startWebMode(core, port, `${electron.missing}; open this address in a browser`);
}
