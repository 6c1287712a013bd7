import { loadNativeLanes } from '@hangar/lane';
import { HangarError, HostLabel, parseHostAddress, startKeyTrace, toHangarError } from '@hangar/shared';
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { registerBackupCommands } from './backups/commands.js';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startAgent } from './agent.js';
import { registerDoctor } from './doctor/command.js';
import { registerInstallCommands } from './install/index.js';
import { DELEGATED_ENV } from './install/systemd-unit.js';
import { runProgram } from './install/plan.js';
import { enterDelegatedLeaf } from './service/cgroup-leaf.js';
import { installedChannel } from './update/update-check.js';
import { writeRunFile } from './service/run-file.js';
import { lockDataDir } from './service/data-dir-lock.js';
import { AGENT_VERSION } from './version.js';
import { DEFAULT_DRAIN_GRACE_MS, DEFAULT_MAX_JOBS } from './jobs/index.js';
import { DEFAULT_MAX_TASKS } from './tasks/index.js';
import { issuePairingCode } from './link/pairing.js';
import { createAgentLogger } from './logging.js';
import { enroll } from './relay/index.js';
import { AgentStore } from './store/db.js';
import { unpairDevice } from './store/pairing.js';

const DEFAULT_DATA = join(homedir(), '.hangar-agent');

/** HANGAR_TRACE_KEYS=<directory>: per-hop keystroke timestamps, written there at exit (shared's key-trace). */
function traceKeys(name: string): void {
  const dir = process.env['HANGAR_TRACE_KEYS'];
  if (!dir) return;
  const text = startKeyTrace({ process: name, now: () => Number(process.hrtime.bigint()) / 1e6 });
  process.on('exit', () => writeFileSync(join(dir, `${name}-${process.pid}.trace`), text()));
}

const program = new Command('hangar-agent')
  .description('the Hangar host agent: terminals (tmux) for the Hangar app on this machine')
  .showHelpAfterError('(run with --help for usage)');

interface ServeOptions {
  listen: string;
  data: string;
  maxSessions: number;
  replayWindow: number;
  sessionLogMb: number;
  maxJobs: number;
  drainGrace: number;
  tartImage?: string;
  bwrap?: string;
  stopWithStdin?: boolean;
  maxTasks: number;
  label: string[];
  backupSecondMs?: number;
  restic?: string;
}

program
  .command('serve')
  .description('accept links from paired devices')
  .option('--listen <host:port>', 'address to listen on (use 0.0.0.0:7070 for LAN/tailnet)', '127.0.0.1:7070')
  .option('--data <dir>', 'data directory (keys, database, session logs)', DEFAULT_DATA)
  .option('--max-sessions <n>', 'concurrent terminal sessions allowed', positiveInt, 5)
  .option(
    '--replay-window <seconds>',
    'how long a dropped client may resume with the exact bytes it missed',
    positiveInt,
    60,
  )
  .option(
    '--session-log-mb <n>',
    "size at which a session's output.log is rotated to output.log.1 (at most ~2× this per session)",
    positiveInt,
    64,
  )
  .option('--max-jobs <n>', 'build jobs running at once', positiveInt, DEFAULT_MAX_JOBS)
  .option(
    '--drain-grace <seconds>',
    'on SIGTERM, how long running jobs may finish before they are stopped and requeued',
    positiveInt,
    DEFAULT_DRAIN_GRACE_MS / 1000,
  )
  .option('--max-tasks <n>', 'agent tasks (AI coding agents) running at once', positiveInt, DEFAULT_MAX_TASKS)
  .option('--label <label>', 'a label agent tasks can need (label:<label>); repeat for more', collectLabel, [])
  .option('--tart-image <name>', 'macOS only: the Tart base image that VM jobs clone (enables the tart executor)')
  .option('--bwrap <path>', 'Linux: the bubblewrap binary for sandbox jobs (default: bwrap on PATH)')
  .option('--restic <path>', 'the restic binary for backups (default: restic on PATH)')
  .addOption(
    // A test-only clock: how long a second of a backup schedule lasts (a 1m schedule in tests).
    new Option('--backup-second-ms <n>', 'tests only: ms per second of the backup schedule')
      .argParser(positiveInt)
      .hideHelp(),
  )
  .option(
    '--stop-with-stdin',
    'stop (as on Ctrl-C) when stdin ends: the supervisor that holds its other end is gone (hangar up); answers `ping <n>` lines on stdin with a {"event":"pong","n":<n>} line on stdout',
  )
  .action(async (options: ServeOptions) => {
    const listen = parseHostAddress(options.listen, { allowAnyPort: true });
    if (!listen)
      fail(new HangarError('E_BAD_REQUEST', `--listen ${options.listen}: expected host:port, e.g. 0.0.0.0:7070`));
    const logger = createAgentLogger();
    traceKeys('agent');
    // Each key and echo of a terminal passes the agent's thread (on a link's stream): the short
    // CPU slice of a keystroke's path (lane/src/native/relay.c), so that a download beside it does
    // not keep a woken key waiting for a CPU; its tmux server gets it from the sessions.
    const native = loadNativeLanes();
    const slice = 'unavailable' in native ? native.unavailable : native.preferLatency();
    if (slice) logger.debug({ why: slice }, "the agent's thread keeps the default CPU slice");
    try {
      // Before anything of the data dir is touched: a second agent's start took the running
      // one's jobs for lost and killed them.
      await lockDataDir(resolve(options.data));
      const sandboxCgroupParent = delegatedCgroup(logger);
      const channel = installedChannel(resolve(options.data), logger);
      const agent = await startAgent({
        dataDir: resolve(options.data),
        listen: listen!,
        maxSessions: options.maxSessions,
        replayWindowMs: options.replayWindow * 1000,
        sessionLogBytes: options.sessionLogMb * 1024 * 1024,
        logger,
        jobs: { maxJobs: options.maxJobs },
        tasks: { maxTasks: options.maxTasks, labels: options.label },
        backups: {
          ...(options.backupSecondMs !== undefined ? { secondMs: options.backupSecondMs } : {}),
          ...(options.restic ? { resticPath: options.restic } : {}),
        },
        ...(options.tartImage ? { tartImage: options.tartImage } : {}),
        ...(options.bwrap ? { bwrapPath: resolve(options.bwrap) } : {}),
        ...(sandboxCgroupParent ? { sandboxCgroupParent } : {}),
        ...(channel ? { updates: { ...channel, run: runProgram } } : {}),
      });
      const host = agent.address.host.includes(':') ? `[${agent.address.host}]` : agent.address.host;
      const address = `${host}:${agent.address.port}`;
      // For the installer's health check and `status`: which process and version answers where.
      writeRunFile(resolve(options.data), {
        pid: process.pid,
        version: AGENT_VERSION,
        address,
        started_at: Date.now(),
      });
      // One JSON line on stdout: `hangar up` reads the port the embedded agent got.
      process.stdout.write(JSON.stringify({ event: 'listening', address }) + '\n');
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping; tmux sessions keep running');
        // SIGTERM lets running jobs finish (within the grace) before they are requeued; Ctrl-C does not wait.
        const drainMs = signal === 'SIGTERM' ? options.drainGrace * 1000 : 0;
        agent
          .drainJobs(drainMs)
          .then(() => agent.dispose())
          .then(
            () => process.exit(0),
            (error: unknown) => {
              logger.error({ err: error }, 'error while stopping');
              process.exit(1);
            },
          );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      if (options.stopWithStdin) {
        // Its supervisor was killed (kill -9, a crash): an agent left running would serve this data
        // dir beside the one the next `hangar up` starts, which takes its running jobs for lost.
        process.stdin.on('end', () => stop('stdin closed'));
        process.stdin.on('error', () => stop('stdin closed'));
        // Its stdout is the same supervisor's pipe: a pong written after it was killed fails with
        // EPIPE, which unhandled would end this process at once instead of stopping it as above.
        process.stdout.on('error', () => stop('stdout closed'));
        // The supervisor's heartbeat: each `ping <n>` line is answered on stdout from this event
        // loop (a wedged or stopped agent cannot), over the pipe it holds anyway: no connection,
        // handshake or log line per beat.
        createInterface({ input: process.stdin }).on('line', (line) => {
          const ping = /^ping (\d{1,15})$/.exec(line);
          if (ping) process.stdout.write(JSON.stringify({ event: 'pong', n: Number(ping[1]) }) + '\n');
        });
      }
    } catch (error) {
      fail(error);
    }
  });

registerDoctor(program);
registerBackupCommands(program, DEFAULT_DATA, fail);
registerInstallCommands(program, fail);

program
  .command('pair')
  .description('print a one-time pairing code (valid 10 minutes, single use) for `hangar hosts add`')
  .option('--data <dir>', 'data directory of the agent', DEFAULT_DATA)
  .option('--json', 'print JSON')
  .action((options: { data: string; json?: boolean }) => {
    try {
      const store = AgentStore.open(resolve(options.data));
      const issued = issuePairingCode(store);
      store.dispose();
      if (options.json) {
        process.stdout.write(JSON.stringify({ code: issued.code, expires_at: issued.expiresAt }) + '\n');
      } else {
        process.stdout.write(
          `pairing code: ${issued.code}\n` +
            `valid until ${new Date(issued.expiresAt).toLocaleTimeString()} (10 minutes), once. On your computer run:\n` +
            `  npx hangar hosts add <name> <this host's address>:<port> --code ${issued.code}\n`,
        );
      }
    } catch (error) {
      fail(error);
    }
  });

program
  .command('unpair')
  .argument('<device>', "the device's name, as `hangar-agent status` lists it, or the start of its key (hex)")
  .description('forget a paired device (a lost or retired computer): its open links end, its next one is refused')
  .option('--data <dir>', 'data directory of the agent', DEFAULT_DATA)
  .action((device: string, options: { data: string }) => {
    try {
      const dataDir = resolve(options.data);
      const store = AgentStore.open(dataDir);
      try {
        const removed = unpairDevice(store, dataDir, device);
        process.stdout.write(
          `unpaired ${removed.name} (key ${removed.public_key.slice(0, 16)}…): ` +
            (removed.pinned
              ? 'a running agent ends its links now, and refuses its next. '
              : 'it was waiting to be approved again; it now stays out here even if it or its approver is. ') +
            'To let it in again, pair it with a new code (hangar-agent pair).\n',
        );
      } finally {
        store.dispose();
      }
    } catch (error) {
      fail(error);
    }
  });

program
  .command('enroll')
  .description(
    'join the account that made the token (the line `hangar hosts enroll-token` printed): this host then shows online there while `serve` runs',
  )
  .requiredOption(
    '--token <hgr1_…>',
    'the enrollment token line; - reads it from stdin (keeps it out of shell history)',
  )
  .option('--data <dir>', 'data directory of the agent', DEFAULT_DATA)
  .option('--name <name>', "what the account calls this host (default: this machine's host name)")
  .option('--json', 'print JSON')
  .action(async (options: { token: string; data: string; name?: string; json?: boolean }) => {
    try {
      const token = options.token === '-' ? await readStdin() : options.token;
      const enrolled = await enroll({
        dataDir: resolve(options.data),
        token,
        ...(options.name ? { name: options.name } : {}),
      });
      if (options.json) {
        process.stdout.write(JSON.stringify(enrolled) + '\n');
        return;
      }
      process.stdout.write(
        `enrolled as "${enrolled.name}" (${enrolled.host_id}) on ${enrolled.relay_url}\n` +
          '`hangar-agent serve` keeps this host online there (one that is running now picks this up within seconds).\n' +
          `The computer that made the token pairs with this host at its first connection, until ${new Date(enrolled.first_link_expires_at).toLocaleString()}.\n`,
      );
    } catch (error) {
      // With --json the error is a value too: the installer runs enroll as the service user and
      // passes its code (E_TOKEN_USED, E_UNAVAILABLE, …) on.
      if (options.json) {
        const failure = toHangarError(error);
        process.stderr.write(JSON.stringify({ error: failure.toJSON() }) + '\n');
        process.exit(failure.code === 'E_BAD_REQUEST' ? 2 : 1);
      }
      fail(error);
    }
  });

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Under systemd with Delegate=yes (set by `hangar-agent install`): the parent for per-job cgroups. */
function delegatedCgroup(logger: ReturnType<typeof createAgentLogger>): string | undefined {
  if (process.env[DELEGATED_ENV] !== '1' || process.platform !== 'linux') return undefined;
  const leaf = enterDelegatedLeaf();
  if ('parent' in leaf) return leaf.parent;
  logger.warn({ reason: leaf.reason }, 'no per-job cgroups: sandbox jobs are limited with rlimits');
  return undefined;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

function collectLabel(value: string, labels: string[]): string[] {
  const parsed = HostLabel.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues[0]!.message);
  return [...labels, parsed.data];
}

function fail(error: unknown): never {
  const failure = toHangarError(error);
  process.stderr.write(`hangar-agent: ${failure.message}\n`);
  process.exit(failure.code === 'E_BAD_REQUEST' ? 2 : 1);
}

program.parseAsync(process.argv).catch(fail);
