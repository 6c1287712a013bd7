import type { CoreApi } from '@hangar/shared';
import type { InProcessCoreApi } from '@hangar/desktop/core';
import type { Command } from 'commander';
import { visibleText } from '../output.js';
import { viaRunningCore, withApi } from '../run.js';
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
        const params = {
          host,
          id: job.id,
          follow,
          through_retries: follow && options.attempt === undefined,
          ...(options.from !== undefined ? { from: parseCount(options.from, '--from') } : {}),
          ...(options.attempt !== undefined ? { attempt: parseCount(options.attempt, '--attempt') } : {}),
        };
        const own = ownCore(api);
        if (own) await followOnOwnLink(own, params, printer);
        else await followLog(api, params, printer);
        if (!follow) return 0;
        const final = (await api.call('jobs.wait', { host, id: job.id })).job;
        if (!printer.endsWithNewline()) process.stdout.write('\n');
        process.stderr.write(`${visibleText(describeEnd(final))}\n`);
        return jobExitStatus(final);
      }),
    );
}

/**
 * The command's own core (no app running, lanes not switched off): the log is followed on its
 * own link to the host, so that a lane beside it can write the bytes straight to stdout. Through a
 * running core the log stays on today's path (the core's stream through its socket).
 */
function ownCore(api: CoreApi): InProcessCoreApi | undefined {
  if (viaRunningCore() || process.env['HANGAR_LANES']?.trim().toLowerCase() === 'off') return undefined;
  if (typeof (api as Partial<InProcessCoreApi>).followLogDirect !== 'function') return undefined;
  if (typeof (process.stdout as { fd?: unknown }).fd !== 'number') return undefined;
  return api as InProcessCoreApi;
}

/**
 * A log followed by the command's own core: on a lane its bytes go from the relay to stdout (the
 * command counts what was written: a lane that breaks resumes there); otherwise (no direct link,
 * no relay, refused) through `printer` as through the core API. Errors as that path's.
 */
async function followOnOwnLink(
  api: InProcessCoreApi,
  params: { host: string; id: string; follow: boolean; through_retries: boolean; from?: number; attempt?: number },
  printer: ReturnType<typeof logPrinter>,
): Promise<void> {
  const stdout = (process.stdout as unknown as { fd: number }).fd;
  /** Where the last lane's bytes ended, while nothing came through the printer since. */
  let laneEnd: { attempt: number; offset: number } | undefined;
  await api.followLogDirect(
    params.host,
    params.id,
    {
      follow: params.follow,
      throughRetries: params.through_retries,
      ...(params.from !== undefined ? { from: params.from } : {}),
      ...(params.attempt !== undefined ? { attempt: params.attempt } : {}),
      laneOut: {
        fd: stdout,
        drained: () => printer.drained(),
        wrote: (attempt, at, bytes) => (laneEnd = { attempt, offset: at + bytes }),
        // `hangar logs -f | head`: the reader leaving is the end of the output, as main.ts has it.
        broke: (message) => {
          if (message.startsWith('writing the local side: Broken pipe')) process.exit(process.exitCode ?? 0);
        },
      },
    },
    {
      data: (chunk, consumed) => {
        laneEnd = undefined;
        printer.data({ attempt: chunk.attempt, data: chunk.data }, consumed);
      },
      attempt: (attempt) => printer.attempt?.(attempt),
      status: (status) => printer.status?.(status),
    },
  );
  if (laneEnd === undefined || !params.follow) return;
  // The final newline rule needs the log's last byte, which only the relay saw: one byte more.
  let last: number | undefined;
  await api.followLogDirect(
    params.host,
    params.id,
    { follow: false, attempt: laneEnd.attempt, from: laneEnd.offset - 1 },
    {
      data: (chunk, consumed) => {
        if (chunk.data.length > 0) last ??= chunk.data[0];
        consumed();
      },
    },
  );
  if (last !== undefined) printer.wroteElsewhere(last);
}
