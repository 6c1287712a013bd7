import {
  DEFAULT_JOB_PIDS,
  Executor,
  HangarError,
  JobLimits,
  JobNetwork,
  parseOrThrow,
  type CoreApi,
  type JobSpecInput,
} from '@hangar/shared';
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { printJson, visibleText } from '../output.js';
import { withApi } from '../run.js';
import {
  JOB_EXIT,
  describeEnd,
  followLog,
  jobExitStatus,
  logPrinter,
  parseCount,
  parseDecimal,
  parseDuration,
  parseMemory,
} from './job-output.js';
import { collect, parseEnv, parseSecrets } from '../options.js';
import { downloadInto } from './artifacts.js';
import { TransferProgress } from './transfer-progress.js';

/** With no --host: the embedded agent `hangar up` pairs as "local". */
export const DEFAULT_HOST = 'local';

interface RunOptions {
  host: string;
  command: string;
  executor?: string;
  artifacts: string[];
  timeout?: string;
  retries?: string;
  network?: string;
  cpus?: string;
  memory?: string;
  pids?: string;
  env: string[];
  secret: string[];
  dir: string;
  /** false with --no-workspace. */
  workspace: boolean;
  detach?: boolean;
  json?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description(
      'run a command on a host as a build job: packs this folder (git-tracked and untracked-not-ignored files; ' +
        'the whole folder outside git, never your home directory; an empty folder is an empty workspace), ' +
        'uploads it unless the host has it, streams the log, downloads artifacts ' +
        'to ./hangar-artifacts/<job>/, and exits with the job’s exit status (Ctrl-C cancels the job)',
    )
    .requiredOption('-c, --command <command>', 'command to run with sh -c in the workspace')
    .option('--host <host>', 'host to run on', DEFAULT_HOST)
    .option('--executor <executor>', 'shell | sandbox | tart (default: the host’s choice)')
    .option('--artifacts <glob>', 'files to bring back, relative to the workspace (repeatable)', collect, [])
    .option('--timeout <duration>', 'kill the job after this long, e.g. 90s, 60m, 2h (default 60m)')
    .option('--retries <n>', 'run a failed or lost job again up to n times (default 0)')
    .option(
      '--network <mode>',
      'sandbox only (shell and tart ignore it): outbound (default): internet, not the host’s loopback; none: no network; host: the host’s network, its loopback services included',
    )
    .option('--cpus <n>', 'CPUs the job may use, e.g. 2 or 0.5 (sandbox)')
    .option('--memory <size>', 'memory the job may use, e.g. 512M or 4G (sandbox; default set by the host)')
    .option('--pids <n>', `processes and threads the job may have at once (sandbox; default ${DEFAULT_JOB_PIDS})`)
    .option('--env <KEY=VALUE>', 'environment variable for the job (repeatable)', collect, [])
    .option(
      '--secret <KEY[=VALUE]>',
      'secret environment variable (repeatable): stored encrypted on the host, never listed nor logged; ' +
        'KEY alone takes the value from this shell’s environment, so it stays out of your shell history',
      collect,
      [],
    )
    .option('--dir <folder>', 'workspace folder to pack', '.')
    .option('--no-workspace', 'pack nothing: the job runs in an empty directory')
    .option('--detach', 'print the job id and return; follow later with: hangar logs <job> --follow')
    .option('--json', 'print the job as JSON on stdout when it ends (its log goes to stderr)')
    .addHelpText(
      'after',
      `\nExit status: the job's own, or ${JOB_EXIT.timedOut} timed out, ${JOB_EXIT.cancelled} cancelled, ` +
        `${JOB_EXIT.lost} lost, ${JOB_EXIT.couldNotRun} could not run (or its artifacts could not be collected); 1-6 are hangar's own errors (see README).`,
    )
    .action((options: RunOptions) => withApi((api) => runJob(api, options)));
}

/** Names this command's upload in the core's progress events. */
const UPLOAD_OP = 'run-upload';

async function runJob(api: CoreApi, options: RunOptions): Promise<number> {
  const notes = process.stderr;
  const spec = buildSpec(options);

  // The core packs the folder, uploads it unless the host has it, and submits: one call. With
  // --no-workspace no folder is sent and the job runs in an empty directory.
  const uploadBar = { current: undefined as TransferProgress | undefined };
  const progress = api.on('progress', (p) => {
    if (p.op_id !== UPLOAD_OP) return;
    uploadBar.current ??= new TransferProgress('uploading workspace', p.total);
    uploadBar.current.update(p.done);
  });
  let submitted;
  try {
    submitted = await api.call('jobs.submit', {
      host: options.host,
      spec,
      ...(options.workspace ? { folder: resolve(options.dir), op_id: UPLOAD_OP } : {}),
    });
  } finally {
    void progress.dispose();
  }
  uploadBar.current?.stop();
  const { host, job, upload } = submitted;
  if (upload?.skipped) notes.write(`workspace already on host ${host} (${upload.hash.slice(0, 12)})\n`);

  if (options.detach) {
    if (options.json) printJson({ host, id: job.id, state: job.state });
    else process.stdout.write(`${job.id}\n`);
    return 0;
  }
  notes.write(`job ${job.id} on ${host} (${job.executor}): ${visibleText(job.command)}\n`);

  const out = options.json ? process.stderr : process.stdout;
  const printer = logPrinter(out, notes);
  const interrupts = handleInterrupts(api, host, job.id);
  let final;
  try {
    await followLog(api, { host, id: job.id, attempt: 1, follow: true, through_retries: true }, printer);
    final = (await api.call('jobs.wait', { host, id: job.id })).job;
  } finally {
    // Once the job has ended there is nothing to cancel: Ctrl-C during the download just stops us.
    interrupts.dispose();
  }
  if (!printer.endsWithNewline()) out.write('\n');
  const artifacts = await downloadInto(api, host, final, `hangar-artifacts/${job.id}`, { quiet: false });
  notes.write(`${visibleText(describeEnd(final))}\n`);
  if (options.json) printJson({ host, job: final, artifacts });
  return jobExitStatus(final);
}

/** A job's longest timeout (JobSpec.timeout_ms): 7 days. */
const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

/** The workspace folder must be one: else the core's packing failed with a bare ENOENT (status 1). */
function checkFolder(dir: string): void {
  let isFolder: boolean | undefined;
  try {
    isFolder = statSync(dir).isDirectory();
  } catch {
    throw new HangarError('E_BAD_REQUEST', `--dir ${dir}: no such folder (give the folder to pack)`);
  }
  if (!isFolder) throw new HangarError('E_BAD_REQUEST', `--dir ${dir}: not a folder (give the folder to pack)`);
}

function buildSpec(options: RunOptions): JobSpecInput {
  const input: JobSpecInput = {
    command: options.command,
    artifacts: options.artifacts,
    env: withColour(parseEnv(options.env)),
    secret_env: parseSecrets(options.secret),
  };
  if (options.executor !== undefined) input.executor = parseOrThrow(Executor, options.executor, '--executor');
  if (options.timeout !== undefined) {
    const ms = parseDuration(options.timeout, '--timeout');
    // The host's bounds (JobSpec.timeout_ms), said in the option's units rather than as spec.timeout_ms.
    if (ms < 1000 || ms > MAX_TIMEOUT_MS) {
      throw new HangarError('E_BAD_REQUEST', `--timeout ${options.timeout}: expected from 1s to 7d`);
    }
    input.timeout_ms = ms;
  }
  if (options.retries !== undefined) input.retries = parseCount(options.retries, '--retries');
  if (options.network !== undefined) {
    input.network = parseOrThrow(JobNetwork, options.network, '--network');
  }
  if (!options.workspace && options.dir !== '.') {
    throw new HangarError('E_BAD_REQUEST', `--dir ${options.dir} and --no-workspace: give one or the other`);
  }
  if (options.workspace) checkFolder(options.dir);
  const limits: JobLimits = {};
  if (options.cpus !== undefined) {
    const cpus = parseDecimal(options.cpus, '--cpus', 'a number of CPUs like 2 or 0.5');
    limits.cpus = parseOrThrow(JobLimits.shape.cpus, cpus, `--cpus ${options.cpus}`);
  }
  if (options.memory !== undefined) {
    const memory = parseMemory(options.memory, '--memory');
    limits.memory_mb = parseOrThrow(JobLimits.shape.memory_mb, memory, `--memory ${options.memory}`);
  }
  if (options.pids !== undefined) {
    const pids = parseCount(options.pids, '--pids');
    limits.pids = parseOrThrow(JobLimits.shape.pids, pids, `--pids ${options.pids}`);
  }
  if (Object.keys(limits).length > 0) input.limits = limits;
  // The whole spec is checked by the door before anything is packed, so a typo costs nothing.
  return input;
}

/**
 * The job's output is not a terminal, so most tools drop their colours; when ours is one, ask
 * them to keep colour (the common switches), unless the user set these or NO_COLOR.
 */
function withColour(env: Record<string, string>): Record<string, string> {
  if (!process.stdout.isTTY || process.env['NO_COLOR'] !== undefined || 'NO_COLOR' in env) return env;
  return { FORCE_COLOR: '1', CLICOLOR_FORCE: '1', ...env };
}

/** First Ctrl-C cancels the job and keeps following to its final state; a second one leaves. */
function handleInterrupts(api: CoreApi, host: string, id: string): { dispose(): void } {
  let count = 0;
  const onSignal = () => {
    count++;
    if (count === 1) {
      process.stderr.write(`\nhangar: cancelling job ${id}… (Ctrl-C again to leave it to finish on its own)\n`);
      api.call('jobs.cancel', { host, id }).catch((error: unknown) => {
        process.stderr.write(`hangar: could not cancel ${id}: ${(error as Error).message}\n`);
      });
      return;
    }
    process.stderr.write(`hangar: left job ${id}; see it with: hangar jobs show ${id}\n`);
    process.exit(JOB_EXIT.cancelled);
  };
  process.on('SIGINT', onSignal);
  return { dispose: () => void process.off('SIGINT', onSignal) };
}
