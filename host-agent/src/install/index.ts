import { HangarError } from '@hangar/shared';
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { HEALTH_TIMEOUT_MS } from '../update/health.js';
import { updateAgent } from '../update/update.js';
import { checkVersion } from '../update/versions.js';
import { runInstall, type InstallOptions } from './install.js';
import { currentEnvironment, findInstall, notInstalled, type InstallMode } from './layout.js';
import { applyPlan, describePlan, runProgram } from './plan.js';
import { serviceControl } from './service-control.js';
import { collectStatus, formatStatus } from './status.js';
import { planUninstall } from './uninstall.js';

type ModeFlags = { user?: boolean; system?: boolean };

/** Adds install, uninstall, status, logs and update to the agent's CLI (called from cli.ts). */
export function registerInstallCommands(program: Command, fail: (error: unknown) => never): void {
  const action =
    <T extends unknown[]>(body: (...args: T) => Promise<void>) =>
    (...args: T) =>
      body(...args).catch(fail);

  program
    .command('install')
    .description('install the agent as a service (systemd on Linux, launchd on macOS) that starts at boot')
    .option('--user', 'a service of your own user (Linux: a user unit with lingering; the default unless root)')
    .option('--system', 'a service of the machine (Linux: runs as the user hangar; the default as root)')
    .option('--data <dir>', 'data directory (default: /var/lib/hangar for --system, ~/.hangar-agent otherwise)')
    .option('--listen <host:port>', 'address to listen on (0.0.0.0:7070 to be reached on the LAN/tailnet)')
    .option(
      '--token <hgr1_…>',
      'enroll in the account that made this token (`hangar hosts enroll-token`) before installing; the service then keeps the host online on that relay; - reads it from stdin',
    )
    .option('--name <name>', "with --token: what the account calls this host (default: this machine's host name)")
    .option('--without-sandbox', 'Linux: install without bubblewrap (no sandbox jobs)')
    .option('--tart', 'macOS: the Tart executor is wanted; check that Tart is installed')
    .option('--node <path>', 'the Node binary the service runs (default: the one running this)')
    .option('--channel <name>', 'update channel', 'stable')
    .option('--registry <url>', 'the npm registry updates come from (default: npm’s configured one)')
    .option('--dry-run', 'print the files it would write and the commands it would run; change nothing')
    .action(
      action(async (options: InstallOptions & ModeFlags) => {
        // `--token -` reads the line from stdin, as enroll does: out of shell history and `ps`.
        const token = options.token === '-' ? await readStdin() : options.token;
        await runInstall({ ...options, ...modeOf(options), ...(token !== undefined ? { token } : {}) });
      }),
    );

  program
    .command('uninstall')
    .description('stop and remove the service; keeps the data directory unless --purge')
    .option('--user', 'the user install')
    .option('--system', 'the system install')
    .option('--purge', 'also delete the data directory (keys, pairings, jobs, logs) and the accounts made for it')
    .option('--dry-run', 'print what it would do; change nothing')
    .action(
      action(async (options: ModeFlags & { purge?: boolean; dryRun?: boolean }) => {
        const environment = currentEnvironment();
        const found = findInstall(environment, modeOf(options).mode);
        if (!found) throw notInstalled(modeOf(options).mode);
        const steps = planUninstall(found.record, found.layout, environment, options.purge ?? false);
        if (options.dryRun) {
          process.stdout.write(`Dry run; nothing was changed. Uninstall would:\n${describePlan(steps)}`);
          return;
        }
        await applyPlan(steps, {
          run: runProgram,
          log: (line) => process.stdout.write(`${line}\n`),
          resolveOwner: () => {
            throw new HangarError('E_INTERNAL', 'uninstall changes no owner');
          },
        });
        process.stdout.write(
          options.purge
            ? 'hangar-agent is uninstalled and its data deleted.\n'
            : `hangar-agent is uninstalled. Its data is kept in ${found.record.data_dir} ` +
                '(a reinstall is the same host to paired devices); delete it with: hangar-agent uninstall --purge\n',
        );
        process.stdout.write('The hangar-agent command itself stays; remove it with: npm uninstall -g hangar-agent\n');
        if (found.layout.platform === 'linux' && found.layout.mode === 'user') {
          process.stdout.write(
            `Lingering stays on for ${environment.user} (other user services may rely on it); ` +
              'turn it off with: loginctl disable-linger\n',
          );
        }
      }),
    );

  program
    .command('status')
    .description('the service, version, data dir, address, relay link, paired devices, sessions and jobs')
    .option('--user', 'the user install')
    .option('--system', 'the system install')
    .option('--json', 'print JSON')
    .action(
      action(async (options: ModeFlags & { json?: boolean }) => {
        const environment = currentEnvironment();
        const found = findInstall(environment, modeOf(options).mode);
        if (!found) throw notInstalled(modeOf(options).mode);
        const status = await collectStatus(found.record, found.layout, runProgram, environment.uid);
        process.stdout.write(options.json ? JSON.stringify(status) + '\n' : formatStatus(status));
      }),
    );

  program
    .command('logs')
    .description("the agent's log (journalctl on Linux, the log file on macOS)")
    .option('--user', 'the user install')
    .option('--system', 'the system install')
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --lines <n>', 'how many lines to start with', '200')
    .action(
      action(async (options: ModeFlags & { follow?: boolean; lines: string }) => {
        const environment = currentEnvironment();
        const found = findInstall(environment, modeOf(options).mode);
        if (!found) throw notInstalled(modeOf(options).mode);
        const lines = Number(options.lines);
        if (!Number.isInteger(lines) || lines < 0)
          throw new HangarError('E_BAD_REQUEST', '--lines: expected a whole number');
        const [program, ...args] = serviceControl(found.layout, environment.uid).logsArgv(
          options.follow ?? false,
          lines,
        );
        const child = spawn(program!, args, { stdio: 'inherit' });
        const code = await new Promise<number>((resolve) => {
          child.once('error', (error) => {
            process.stderr.write(`hangar-agent: could not run ${program}: ${error.message}\n`);
            resolve(1);
          });
          child.once('exit', (exitCode) => resolve(exitCode ?? 0));
        });
        process.exitCode = code;
      }),
    );

  program
    .command('update')
    .description(
      'install a newer version beside this one, switch to it, and roll back by itself if it does not answer in 30 s (--health-timeout)',
    )
    .option('--version <version>', 'go to this version (default: the newest on the channel)')
    .option('--channel <name>', 'the channel to follow (default: the one chosen at install, stable)')
    .option('--rollback', 'go back to the version that ran before the last update')
    .option(
      '--health-timeout <seconds>',
      'how long the new version has to answer (and be online on its relay if the host was) before it is rolled back',
      String(HEALTH_TIMEOUT_MS / 1000),
    )
    .option('--user', 'the user install')
    .option('--system', 'the system install')
    .action(
      action(
        async (
          options: ModeFlags & { version?: string; channel?: string; rollback?: boolean; healthTimeout: string },
        ) => {
          const healthTimeoutMs = healthTimeoutOption(options.healthTimeout);
          const environment = currentEnvironment();
          const found = findInstall(environment, modeOf(options).mode);
          if (!found) throw notInstalled(modeOf(options).mode);
          if (options.rollback && options.version) {
            throw new HangarError('E_BAD_REQUEST', '--rollback goes to the previous version; leave out --version');
          }
          await updateAgent({
            record: found.record,
            layout: found.layout,
            run: runProgram,
            uid: environment.uid,
            log: (line) => process.stdout.write(`${line}\n`),
            ...(options.version ? { version: checkVersion(options.version) } : {}),
            ...(options.channel ? { channel: options.channel } : {}),
            ...(options.rollback ? { rollback: true } : {}),
            healthTimeoutMs,
          });
        },
      ),
    );
}

/** `update --health-timeout`: whole seconds, 1 to 3600; checked before anything is looked at or changed. */
function healthTimeoutOption(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 3600) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `--health-timeout: expected a whole number of seconds from 1 to 3600, not "${value}"`,
    );
  }
  return Number(value) * 1000;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function modeOf(flags: ModeFlags): { mode?: InstallMode } {
  if (flags.user && flags.system) throw new HangarError('E_BAD_REQUEST', 'choose one of --user and --system');
  return flags.user ? { mode: 'user' } : flags.system ? { mode: 'system' } : {};
}
