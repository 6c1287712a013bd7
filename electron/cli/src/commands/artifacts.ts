import type { CoreApi, DownloadedArtifact, JobDetail } from '@hangar/shared';
import type { Command } from 'commander';
import { relative, resolve } from 'node:path';
import { printJson, table } from '../output.js';
import { withApi } from '../run.js';
import { TransferProgress } from './transfer-progress.js';

/** Names this command's download in the core's progress events. */
const DOWNLOAD_OP = 'artifacts-download';

export function registerArtifacts(program: Command): void {
  program
    .command('artifacts')
    .description('download a job’s artifacts (sha256 checked) into ./hangar-artifacts/<job>/ or --out')
    .argument('<job>', 'job id (see `hangar jobs`)')
    .option('--host <host>', 'host the job ran on (default: ask every paired host)')
    .option('--out <dir>', 'folder to write into (default ./hangar-artifacts/<job>)')
    .option('--json', 'print JSON')
    .action((id: string, options: { host?: string; out?: string; json?: boolean }) =>
      withApi(async (api) => {
        const { host, job } = await api.call('jobs.get', {
          id,
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        const files = await downloadInto(api, host, job, options.out ?? `hangar-artifacts/${job.id}`, {
          quiet: options.json === true,
        });
        if (options.json) return printJson(files);
        if (files.length === 0) process.stdout.write(`job ${job.id} has no artifacts\n`);
        else
          process.stdout.write(
            table(
              ['FILE', 'SIZE', 'SHA256'],
              files.map((f) => [relative(process.cwd(), f.file) || f.file, String(f.size), f.sha256]),
            ),
          );
      }),
    );
}

/** Downloads a finished job's artifacts with a progress bar; says where they went. */
export async function downloadInto(
  api: CoreApi,
  host: string,
  job: JobDetail,
  outDir: string,
  options: { quiet: boolean },
): Promise<DownloadedArtifact[]> {
  if (job.artifacts.length === 0) return [];
  const out = resolve(outDir);
  let bar: TransferProgress | undefined;
  const progress = api.on('progress', (p) => {
    if (options.quiet || p.op_id !== DOWNLOAD_OP) return;
    bar ??= new TransferProgress(`downloading ${job.artifacts.length} artifact(s)`, p.total);
    bar.update(p.done);
  });
  let files: DownloadedArtifact[];
  try {
    ({ files } = await api.call('artifacts.download', { host, id: job.id, dir: out, op_id: DOWNLOAD_OP }));
  } finally {
    void progress.dispose();
  }
  bar?.stop();
  if (!options.quiet && files.length > 0) {
    process.stderr.write(`artifacts (sha256 verified) in ${relative(process.cwd(), out) || out}/\n`);
  }
  return files;
}
