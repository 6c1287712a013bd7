import type { AttemptInfo, JobDetail } from '@hangar/shared';
import type { Command } from 'commander';
import {
  ago,
  printJson,
  printNothingListed,
  reportUnreachable,
  table,
  visibleText,
  withoutNullErrors,
} from '../output.js';
import { withApi } from '../run.js';
import { formatDuration, parseCount } from './job-output.js';

const PHASES = ['queued', 'clone', 'boot', 'ready', 'run', 'collect', 'delete'] as const;

export function registerJobs(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('list build jobs on one host or every paired host; `hangar jobs show <job>` for one')
    .option('--host <host>', 'only this host (default: every paired host)')
    .option('--limit <n>', 'at most this many per host', '50')
    .option('--json', 'print JSON')
    .action((options: { host?: string; limit: string; json?: boolean }) =>
      withApi(async (api) => {
        const limit = parseCount(options.limit, '--limit');
        const { hosts: groups } = await api.call('jobs.list', {
          ...(options.host !== undefined ? { host: options.host } : {}),
          limit,
        });
        if (options.json) return printJson(withoutNullErrors(groups));
        const rows = groups
          .flatMap((g) => g.jobs.map((j) => ({ host: g.host, job: j })))
          .sort((a, b) => b.job.created_at - a.job.created_at)
          .map(({ host, job }) => [
            job.id,
            host,
            job.state,
            job.executor,
            String(job.attempt),
            job.exit_code === null ? '-' : String(job.exit_code),
            ago(job.created_at),
            oneLine(job.command),
          ]);
        if (rows.length > 0)
          process.stdout.write(
            table(['ID', 'HOST', 'STATE', 'EXECUTOR', 'ATTEMPT', 'EXIT', 'CREATED', 'COMMAND'], rows),
          );
        else printNothingListed(groups, 'no jobs', 'start one with: hangar run -c "<command>"');
        return reportUnreachable(groups);
      }),
    );

  jobs
    .command('show')
    .description('one job: its spec, each attempt with its time breakdown, and its artifacts')
    .argument('<job>', 'job id')
    .option('--host <host>', 'host the job ran on (default: ask every paired host)')
    .option('--json', 'print JSON')
    .action((id: string, options: { host?: string; json?: boolean }) =>
      withApi(async (api) => {
        const { host, job } = await api.call('jobs.get', {
          id,
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        if (options.json) return printJson({ host, ...job });
        process.stdout.write(describeJob(host, job));
      }),
    );

  program
    .command('cancel')
    .description('cancel a job: SIGTERM to its processes, SIGKILL after the grace period; waits for the end')
    .argument('<job>', 'job id')
    .option('--host <host>', 'host the job runs on (default: ask every paired host)')
    .option('--no-wait', 'return once the host accepted the cancel')
    .action((id: string, options: { host?: string; wait: boolean }) =>
      withApi(async (api) => {
        const { host, job } = await api.call('jobs.cancel', {
          id,
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        if (!options.wait) {
          process.stdout.write(`cancelling ${job.id} on ${host} (${job.state})\n`);
          return;
        }
        const final = (await api.call('jobs.wait', { host, id: job.id })).job;
        process.stdout.write(`job ${final.id} on ${host} is ${final.state}\n`);
      }),
    );

  program
    .command('retry')
    .description('run a finished job again as a new attempt; follow it with: hangar logs <job> --follow')
    .argument('<job>', 'job id')
    .option('--host <host>', 'host the job ran on (default: ask every paired host)')
    .action((id: string, options: { host?: string }) =>
      withApi(async (api) => {
        const { host, job } = await api.call('jobs.retry', {
          id,
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        // A queued job's `attempt` is still its last one: the retry runs as the next.
        const attempt = job.state === 'queued' ? job.attempt + 1 : job.attempt;
        process.stdout.write(`job ${job.id} on ${host} is ${job.state} (attempt ${attempt})\n`);
      }),
    );
}

/** What `jobs show` adds after the executor: nothing for the default network (outbound). */
const NETWORK_NOTES: Record<JobDetail['spec']['network'], string> = {
  default: '',
  outbound: '',
  none: ', no network',
  host: ', host network',
};

function describeJob(host: string, job: JobDetail): string {
  const lines = [
    `job       ${job.id} on ${host}`,
    `state     ${job.state}${job.exit_code !== null ? ` (exit ${job.exit_code})` : ''}${job.error ? ` — ${visibleText(job.error)}` : ''}`,
    `command   ${visibleText(job.command)}`,
    `executor  ${job.executor}${NETWORK_NOTES[job.spec.network]}`,
    `created   ${new Date(job.created_at).toISOString()} (${ago(job.created_at)})`,
    `timeout   ${formatDuration(job.spec.timeout_ms)}, retries ${job.retries}`,
  ];
  if (job.spec.workspace) lines.push(`workspace ${job.spec.workspace.slice(0, 12)}`);
  const env = [
    ...Object.entries(job.spec.env).map(([key, value]) => `${key}=${visibleText(value)}`),
    ...job.spec.secret_env_names.map((key) => `${key} (secret)`),
  ];
  if (env.length > 0) lines.push(`env       ${env.join('  ')}`);
  let text = lines.join('\n') + '\n';
  if (job.attempts.length > 0) {
    text += '\nattempts\n';
    text += table(
      ['#', 'STATE', 'EXIT', 'LOG', ...PHASES.map((p) => p.toUpperCase()), 'ERROR'],
      job.attempts.map((a) => attemptRow(a)),
    );
  }
  if (job.artifacts.length > 0) {
    text += '\nartifacts\n';
    text += table(
      ['PATH', 'SIZE', 'SHA256'],
      job.artifacts.map((a) => [a.path, String(a.size), a.sha256]),
    );
  }
  return text;
}

function attemptRow(attempt: AttemptInfo): string[] {
  return [
    String(attempt.number),
    attempt.state,
    attempt.exit_code === null ? '-' : String(attempt.exit_code),
    String(attempt.log_size),
    ...PHASES.map((phase) => {
      const ms = attempt.timings[phase];
      return ms === undefined ? '-' : formatDuration(ms);
    }),
    attempt.error ?? '',
  ];
}

function oneLine(command: string): string {
  const first = command.split('\n')[0]!;
  const short = first.length > 60 ? `${first.slice(0, 57)}…` : first;
  return short === command ? short : `${short}${short.endsWith('…') ? '' : ' …'}`;
}
