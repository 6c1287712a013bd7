import { HangarCore } from '@hangar/desktop/core';
import { AGENT_ENV, AGENT_NODE_FLAGS, HangarError, toHangarError } from '@hangar/shared';
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { reportError } from '../exit-codes.js';
import { findElectron, launchElectron, startWebMode } from './ui.js';

const run = promisify(execFile);

/** VS Code's pty host uses the same bound: a crash loop ends with an error, not a spin. */
const MAX_RESTARTS = 5;
const LOCAL = 'local';

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

function agentBin(): string {
  const fromEnv = process.env['HANGAR_AGENT_BIN'];
  if (fromEnv) return fromEnv;
  const pkg = fileURLToPath(import.meta.resolve('@hangar/host-agent/package.json'));
  return join(pkg, '..', 'bin', 'hangar-agent.js');
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
  const dataDir = join(core.home, 'agent');
  let agent: ChildProcess | undefined;
  let ui: { dispose(): Promise<void> | void } | undefined;
  let stopping = false;
  let restarts = 0;

  const start = async (): Promise<void> => {
    const child = spawn(
      process.execPath,
      [...AGENT_NODE_FLAGS, agentBin(), 'serve', '--listen', listen, '--data', dataDir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        // The embedded agent logs only what needs attention into this terminal, unless asked for more.
        env: { ...process.env, ...AGENT_ENV, HANGAR_LOG_LEVEL: process.env['HANGAR_LOG_LEVEL'] ?? 'warn' },
      },
    );
    agent = child;
    const address = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        const event = safeJson(line);
        if (event && event['event'] === 'listening' && typeof event['address'] === 'string') resolve(event['address']);
      });
      child.once('exit', (code) =>
        reject(new HangarError('E_UNAVAILABLE', `the embedded agent exited with status ${code} before listening`)),
      );
    });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      restarts++;
      if (restarts > MAX_RESTARTS) {
        process.stderr.write(
          `hangar: the embedded agent crashed ${MAX_RESTARTS} times; see the log above, then run: npm start\n`,
        );
        void stop(1);
        return;
      }
      process.stderr.write(
        `hangar: the embedded agent stopped (${signal ?? code}); restarting (${restarts}/${MAX_RESTARTS})\n`,
      );
      start().catch((error: unknown) => void stop(reportError(error)));
    });
    await ensurePaired(core, dataDir, address);
    process.stdout.write(`hangar: local stack up — host "${LOCAL}" at ${address} (data in ${core.home})\n`);
  };

  const stop = async (status: number): Promise<never> => {
    stopping = true;
    await ui?.dispose();
    agent?.kill('SIGTERM');
    await core.dispose();
    process.exit(status);
  };

  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    // The window first: it is useful at once (hosts, jobs history) and shows "local" connecting
    // while the embedded agent starts, instead of the user waiting for both in turn.
    if (uiPort !== undefined) ui = await startUi(core, uiPort, () => void stop(0));
    await start();
    process.stdout.write(
      `hangar: try  npx hangar session new ${LOCAL} --name work -- bash  then  npx hangar attach ${LOCAL} work\n` +
        'hangar: Ctrl-C stops the local stack (sessions keep running in tmux)\n',
    );
  } catch (error) {
    return stop(reportError(error));
  }
  return new Promise<number>(() => undefined);
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

/** Pairs the embedded agent on first start, and again if its data dir was reset. */
async function ensurePaired(core: HangarCore, dataDir: string, address: string): Promise<void> {
  const existing = core.registry.find(LOCAL);
  if (existing && !existing.embedded) {
    throw new HangarError(
      'E_HOST_EXISTS',
      `a host named "${LOCAL}" exists and is not this machine's embedded agent; rename it with: hangar hosts rm ${LOCAL}`,
    );
  }
  if (existing) {
    core.updateHostAddress(LOCAL, address);
    try {
      await core.hostInfo(LOCAL);
      return;
    } catch (error) {
      const code = toHangarError(error).code;
      if (code !== 'E_AUTH_HOST_KEY_CHANGED' && code !== 'E_AUTH_UNKNOWN_DEVICE') throw error;
    }
  }
  const { stdout } = await run(process.execPath, [agentBin(), 'pair', '--data', dataDir, '--json']);
  const code = safeJson(stdout)?.['code'];
  if (typeof code !== 'string') throw new HangarError('E_INTERNAL', `hangar-agent pair printed no code: ${stdout}`);
  await core.addHost({ name: LOCAL, address, code, embedded: true, replace: true });
}

function safeJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
