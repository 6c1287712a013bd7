import { HangarCore, LocalDoor, WebServer } from '@hangar/desktop/core';
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { reportError } from '../exit-codes.js';
import { ELECTRON_MAIN } from '../paths.js';

/** Tells electron/main that `hangar up` already runs the embedded agent. */
export const AGENT_MANAGED_ENV = 'HANGAR_AGENT_MANAGED';

export function registerUi(program: Command): void {
  program
    .command('ui')
    .description('serve the Hangar UI to a browser on this computer (web mode, 127.0.0.1 only); Ctrl-C stops it')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', '0')
    .action(async (options: { port: string }) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write(`hangar: --port ${options.port}: expected a port number from 0 to 65535\n`);
        process.exitCode = 2;
        return;
      }
      let core: HangarCore | undefined;
      try {
        core = await HangarCore.open();
        const web = await startWebMode(core, port);
        const stop = async () => {
          await web.dispose();
          await core?.dispose();
          process.exit(0);
        };
        process.on('SIGINT', () => void stop());
        process.on('SIGTERM', () => void stop());
      } catch (error) {
        await core?.dispose();
        process.exitCode = reportError(error);
      }
    });
}

/**
 * Web mode, and the local door for hangar commands on the same live API (issue 18), both up
 * before the address is printed: once a user (or a test) sees it, commands reach this core.
 */
export async function startWebMode(core: HangarCore, port = 0, why?: string): Promise<{ dispose(): Promise<void> }> {
  const web = await WebServer.start({ core, port });
  const door = await LocalDoor.start({ api: web.api, home: core.home, logger: core.logger });
  process.stdout.write(
    (why ? `hangar: ${why}\n` : '') +
      `hangar: Hangar UI at ${web.url}\n` +
      'hangar: open that address in a browser on this computer (the #token part is the key; keep it to yourself)\n',
  );
  return {
    dispose: async () => {
      await door?.dispose();
      await web.dispose();
    },
  };
}

/**
 * The Electron binary when it is installed (it is an optional dependency: its download may have
 * been skipped or failed), else the reason in words.
 */
export function findElectron(): { path: string } | { missing: string } {
  try {
    // The electron package's main export is the path of its binary; it throws if the download did not happen.
    const path: unknown = createRequire(import.meta.url)('electron');
    if (typeof path === 'string' && existsSync(path)) {
      if (!existsSync(ELECTRON_MAIN)) return { missing: 'the Electron shell is not built (run: npm run build)' };
      return { path };
    }
    return { missing: 'Electron is not installed (optional dependency)' };
  } catch {
    return { missing: 'Electron is not installed (optional dependency)' };
  }
}

/** Opens the Hangar window; the caller stops the stack when it exits. */
export function launchElectron(electronPath: string): ChildProcess {
  return spawn(electronPath, [ELECTRON_MAIN], {
    stdio: 'inherit',
    env: { ...process.env, [AGENT_MANAGED_ENV]: '1' },
  });
}
