import { HangarError, type AgentState, type CoreApi, type TmuxServerState } from '@hangar/shared';
import type { Command } from 'commander';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, relative, resolve } from 'node:path';
import {
  ago,
  printJson,
  printNothingListed,
  reportUnreachable,
  table,
  visibleText,
  withoutNullErrors,
} from '../output.js';
import { collect, parseEnv } from '../options.js';
import { withApi } from '../run.js';
import { EXIT } from '../exit-codes.js';

/** What Claude Code in a session is doing, as `session ls` shows it (--json has the details). */
const AGENT_LABELS: Record<AgentState, string> = {
  starting: 'starting',
  idle: 'idle',
  running: 'working',
  waiting_input: 'needs you',
};

/** With no command, the host user's login shell. */
const DEFAULT_COMMAND = ['sh', '-c', 'exec "${SHELL:-/bin/sh}" -l'];

interface NewOptions {
  name: string;
  cwd?: string;
  env: string[];
  instructions?: string;
}

export function registerSession(program: Command): void {
  const session = program.command('session').description('create, list and kill terminal sessions on a host');

  session
    .command('new')
    .description('start a persistent terminal session (tmux) on a host')
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .argument('[command...]', 'command and arguments after --, e.g. -- claude (default: your login shell)')
    .requiredOption('--name <name>', 'session name, unique on the host')
    .option('--cwd <dir>', 'working directory on the host (absolute, or ~/…)')
    .option('--env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('--instructions <file>', 'write this file as CLAUDE.md and AGENTS.md into the working directory')
    .action((host: string, command: string[], options: NewOptions) =>
      withApi(async (api) => {
        const cwd = options.cwd !== undefined ? remoteCwd(options.cwd, await isThisMachine(api, host)) : undefined;
        const created = await api.call('sessions.create', {
          host,
          session: {
            name: options.name,
            command: command.length > 0 ? command : DEFAULT_COMMAND,
            ...(cwd !== undefined ? { cwd } : {}),
            ...(options.env.length > 0 ? { env: parseEnv(options.env) } : {}),
            ...(options.instructions !== undefined ? { instructions: readInstructions(options.instructions) } : {}),
          },
        });
        process.stdout.write(
          `created session "${created.name}" on ${host} in ${visibleText(created.cwd)}; attach with: hangar attach ${host} ${created.name}\n`,
        );
      }),
    );

  session
    .command('ls')
    .description('list sessions on one host, or on every paired host')
    .argument('[host]', 'host name (default: all hosts)')
    .option('--json', 'print JSON')
    .action((host: string | undefined, options: { json?: boolean }) =>
      withApi(async (api) => {
        const { hosts: groups } = await api.call('sessions.list', host !== undefined ? { host } : {});
        if (options.json) {
          printJson(withoutNullErrors(groups));
          return reportTmuxLoss(groups);
        }
        const rows = groups.flatMap((g) =>
          g.sessions.map((s) => [
            g.host,
            s.name,
            s.command.join(' '),
            ago(s.created_at),
            String(s.attached_clients),
            s.alive ? 'yes' : 'no',
            s.agent ? AGENT_LABELS[s.agent.state] : '',
          ]),
        );
        if (rows.length > 0)
          process.stdout.write(table(['HOST', 'NAME', 'COMMAND', 'CREATED', 'CLIENTS', 'ALIVE', 'CLAUDE'], rows));
        else
          printNothingListed(
            groups,
            'no sessions',
            'start one with: hangar session new <host> --name <name> -- <command>',
          );
        const lost = reportTmuxLoss(groups);
        return reportUnreachable(groups) || lost;
      }),
    );

  session
    .command('kill')
    .description('end a session and the programs in it')
    .argument('<host>')
    .argument('<name>')
    .action((host: string, name: string) =>
      withApi(async (api) => {
        await api.call('sessions.kill', { host, name });
        process.stdout.write(`killed session "${name}" on ${host}\n`);
      }),
    );
}

/** The embedded agent runs here: a path for it is a path on this computer. Unknown hosts are left to sessions.create to report. */
async function isThisMachine(api: CoreApi, host: string): Promise<boolean> {
  const { hosts } = await api.call('hosts.list', {});
  return hosts.find((h) => h.name === host)?.embedded ?? true;
}

/**
 * A host whose tmux server went away with sessions on it says so (stderr) instead of looking like
 * a host with no sessions; the exit status is then 1. The message is the host's: shown visibly.
 */
function reportTmuxLoss(groups: { host: string; tmux: TmuxServerState | null }[]): number {
  let status: number = EXIT.ok;
  for (const g of groups) {
    if (g.tmux && !g.tmux.ok) {
      const message = g.tmux.message ?? 'its tmux server went away with sessions on it';
      process.stderr.write(`hangar: ${g.host}: ${visibleText(message)}\n`);
      status = EXIT.error;
    }
  }
  return status;
}

/** The most a session's instructions may be (SessionCreateParams.instructions). */
const MAX_INSTRUCTIONS_BYTES = 1024 * 1024;

function readInstructions(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw new HangarError('E_BAD_REQUEST', `--instructions ${file}: ${(error as Error).message}`);
  }
  try {
    // Checked before reading: /dev/zero or a pipe was read for ever, a huge file read whole.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new HangarError('E_BAD_REQUEST', `--instructions ${file}: not a regular file`);
    if (stat.size > MAX_INSTRUCTIONS_BYTES) {
      throw new HangarError('E_BAD_REQUEST', `--instructions ${file}: ${stat.size} bytes; at most 1 MiB`);
    }
    return readFileSync(fd, 'utf8');
  } catch (error) {
    if (error instanceof HangarError) throw error;
    throw new HangarError('E_BAD_REQUEST', `--instructions ${file}: ${(error as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The shell expands `--cwd ~/src/app` with *this* computer's home before we see it; for a remote
 * host the user meant the home over there, so a path under the local home becomes `~/…` again.
 */
export function remoteCwd(cwd: string, embedded: boolean, flag = '--cwd'): string {
  if (cwd === '~' || cwd.startsWith('~/')) return cwd;
  if (embedded) return resolve(cwd);
  if (!isAbsolute(cwd)) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `${flag} ${cwd}: give an absolute path or ~/… (relative paths mean nothing on another host)`,
    );
  }
  const home = homedir();
  const rel = relative(home, cwd);
  if (rel === '') return '~';
  if (!rel.startsWith('..') && !isAbsolute(rel)) return `~/${rel}`;
  return cwd;
}
