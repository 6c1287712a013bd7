import type { Command } from 'commander';
import { visibleText } from '../output.js';
import { withApi } from '../run.js';
import { describeEnd, followLog, jobExitStatus, logPrinter, parseCount } from './job-output.js';

interface LogsOptions {
  host?: string;
  follow?: boolean;
  from?: string;
  attempt?: string;
}

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description('print a job’s log (the latest attempt), raw bytes with colours; --follow streams it live')
    .argument('<job>', 'job id (see `hangar jobs`)')
    .option('--host <host>', 'host the job runs on (default: ask every paired host)')
    .option('-f, --follow', 'keep streaming until the job ends, through retries; exit with the job’s status')
    .option('--from <offset>', 'start at this byte offset of the log (what you already have)')
    .option('--attempt <n>', 'this attempt instead of the latest')
    .action((id: string, options: LogsOptions) =>
      withApi(async (api) => {
        const { host, job } = await api.call('jobs.get', {
          id,
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        const printer = logPrinter(process.stdout, process.stderr);
        const follow = options.follow === true;
        await followLog(
          api,
          {
            host,
            id: job.id,
            follow,
            through_retries: follow && options.attempt === undefined,
            ...(options.from !== undefined ? { from: parseCount(options.from, '--from') } : {}),
            ...(options.attempt !== undefined ? { attempt: parseCount(options.attempt, '--attempt') } : {}),
          },
          printer,
        );
        if (!follow) return 0;
        const final = (await api.call('jobs.wait', { host, id: job.id })).job;
        if (!printer.endsWithNewline()) process.stdout.write('\n');
        process.stderr.write(`${visibleText(describeEnd(final))}\n`);
        return jobExitStatus(final);
      }),
    );
}
