import {
  BACKUP_INTERVAL_EXPECTED,
  describeBackupSchedule,
  parseBackupInterval,
  formatBytes,
  HangarError,
  type BackupKeep,
  type BackupRun,
  type BackupStatus,
  type CoreApi,
  type CoreEventData,
} from '@hangar/shared';
import type { Command } from 'commander';
import { ago, printJson, table } from '../output.js';
import { withApi } from '../run.js';
import { formatDuration } from './job-output.js';
import { remoteCwd } from './session.js';

interface SetOptions {
  path: string[];
  exclude: string[];
  every?: string;
  repo?: string;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerBackup(program: Command): void {
  const backup = program
    .command('backup')
    .description("restic snapshots of a host's directories, on a schedule and on demand, kept on that host");

  backup
    .command('set')
    .description('say what a host backs up, how often and what it keeps (replaces what was set)')
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .option('--path <dir>', 'a directory on the host to back up (absolute, or ~/…); repeat for more', collect, [])
    .option(
      '--exclude <pattern>',
      "leave out what matches restic's --exclude pattern (*.log, node_modules, /srv/data/tmp); repeat for more",
      collect,
      [],
    )
    .option('--every <interval>', 'back up on a schedule: 30m, 6h, 1d, … (default: only on demand)')
    .option(
      '--repo <location>',
      "restic repository: a directory on the host, or sftp:…, rest:…, s3:… (default: in the agent's data)",
    )
    .option('--keep-last <n>', 'after each backup, keep the last n snapshots (restic forget --prune)')
    .option('--keep-hourly <n>', 'keep the last snapshot of each of the last n hours')
    .option('--keep-daily <n>', 'keep the last snapshot of each of the last n days')
    .option('--keep-weekly <n>', 'keep the last snapshot of each of the last n weeks')
    .option('--keep-monthly <n>', 'keep the last snapshot of each of the last n months')
    .option('--keep-yearly <n>', 'keep the last snapshot of each of the last n years')
    .option('--json', 'print JSON')
    .action((host: string, options: SetOptions) =>
      withApi(async (api) => {
        const keep: BackupKeep = {};
        for (const kind of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
          const flag = `keep${kind[0]!.toUpperCase()}${kind.slice(1)}` as keyof SetOptions;
          const value = options[flag];
          if (typeof value === 'string') keep[kind] = parseCount(value, `--keep-${kind}`);
        }
        const status = await api.call('backups.set', {
          host,
          settings: {
            paths: options.path.map((path) => remoteCwd(path, false, '--path')),
            every_s: options.every !== undefined ? parseInterval(options.every) : null,
            keep,
            repository: options.repo ?? null,
            ...(options.exclude.length > 0 ? { excludes: options.exclude } : {}),
          },
        });
        if (options.json) return printJson(status);
        process.stdout.write(
          `${host} backs up ${status.settings!.paths.join(', ')}${describeExcludes(status.settings!.excludes)} to ${status.repository}, ${describeBackupSchedule(status.settings!)}\n` +
            (status.restic_missing
              ? `warning: ${status.restic_missing}\n`
              : `back it up now with: hangar backup now ${host}\n`),
        );
      }),
    );

  backup
    .command('now')
    .description('back a host up now, showing progress; joins a backup already running there')
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .option('--json', 'print the run as JSON')
    .action((host: string, options: { json?: boolean }) =>
      withApi(async (api) => {
        const progress = new BackupProgressView(`backing up ${host}`);
        const { run } = await withProgress(api, host, progress, () => api.call('backups.now', { host }));
        printRun(run, options.json);
      }),
    );

  backup
    .command('ls')
    .description("list a host's snapshots, newest first")
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .option('--json', 'print JSON')
    .action((host: string, options: { json?: boolean }) =>
      withApi(async (api) => {
        const { snapshots } = await api.call('backups.list', { host });
        if (options.json) return printJson(snapshots);
        if (snapshots.length === 0) {
          process.stdout.write(`no snapshots on ${host} yet; make one with: hangar backup now ${host}\n`);
          return;
        }
        process.stdout.write(
          table(
            ['ID', 'TIME', 'PATHS'],
            snapshots.map((s) => [s.short_id, s.time.replace(/\.\d+/, ''), s.paths.join(', ')]),
          ),
        );
      }),
    );

  backup
    .command('restore')
    .description('restore a snapshot into a new or empty directory on the host (never over existing files)')
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .argument('<snapshot>', 'a snapshot id (hangar backup ls) or latest')
    .requiredOption('--to <dir>', 'a new or empty directory on the host; files land under it at their original paths')
    .option('--include <path>', 'only this path of the snapshot (as it was on the host); repeat for more', collect, [])
    .option('--json', 'print the run as JSON')
    .action((host: string, snapshot: string, options: { to: string; include: string[]; json?: boolean }) =>
      withApi(async (api) => {
        const progress = new BackupProgressView(`restoring ${snapshot} on ${host}`);
        const { run } = await withProgress(api, host, progress, () =>
          api.call('backups.restore', {
            host,
            snapshot,
            to: remoteCwd(options.to, false, '--to'),
            ...(options.include.length > 0
              ? { include: options.include.map((path) => remoteCwd(path, false, '--include')) }
              : {}),
          }),
        );
        printRun(run, options.json);
      }),
    );

  backup
    .command('status')
    .description("a host's backup schedule, last and next run, and recent errors")
    .argument('<host>', 'host name (see `hangar hosts ls`)')
    .option('--json', 'print JSON')
    .action((host: string, options: { json?: boolean }) =>
      withApi(async (api) => {
        const status = await api.call('backups.status', { host });
        if (options.json) return printJson(status);
        printStatus(host, status);
      }),
    );
}

async function withProgress<T>(
  api: CoreApi,
  host: string,
  view: BackupProgressView,
  call: () => Promise<T>,
): Promise<T> {
  // The label is printed once the host accepted (backup.started), not before a refusal.
  const subscriptions = [
    api.on('backup.started', (started) => {
      if (started.host === host) view.start();
    }),
    api.on('backup.progress', (p) => {
      if (p.host === host) view.update(p);
    }),
  ];
  // Ctrl-C ends the watching only: the run is the agent's and goes on; say so, and where to see it.
  const onSignal = (): void => {
    view.stop();
    process.stderr.write(
      `hangar: stopped watching; the run goes on on ${host}: see it with: hangar backup status ${host}\n`,
    );
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  try {
    return await call();
  } finally {
    process.off('SIGINT', onSignal);
    for (const subscription of subscriptions) void subscription.dispose();
    view.stop();
  }
}

/** One line rewritten in place on a terminal; on a pipe, a line at each quarter. */
class BackupProgressView {
  private shown = false;
  private started = false;
  private quarter = 0;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    this.stream.write(`${this.label}…\n`);
  }

  update(p: CoreEventData<'backup.progress'>): void {
    this.start();
    const line =
      `${this.label}: ${Math.floor(p.percent * 100)}% ${formatBytes(p.bytes_done)} / ${formatBytes(p.total_bytes)}, ` +
      `${p.files_done} / ${plural(p.total_files, 'file')}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.shown = true;
      return;
    }
    const quarter = Math.floor(p.percent * 4);
    if (quarter > this.quarter && quarter < 4) {
      this.quarter = quarter;
      this.stream.write(`${line}\n`);
    }
  }

  stop(): void {
    if (this.shown) this.stream.write('\n');
    this.shown = false;
  }
}

function describeRun(run: BackupRun): string {
  const took = run.finished_at !== null ? ` in ${formatDuration(run.finished_at - run.started_at)}` : '';
  const note = run.message ? `\nnote: ${run.message}` : '';
  if (run.kind === 'restore') {
    return `restored ${run.snapshot} into ${run.to}: ${plural(run.files ?? 0, 'file')}, ${formatBytes(run.bytes ?? 0)}${took}${note}`;
  }
  return (
    `snapshot ${run.snapshot}: ${plural(run.files ?? 0, 'file')}, ${formatBytes(run.bytes ?? 0)}, ` +
    `${formatBytes(run.added_bytes ?? 0)} added to the repository${took}${note}`
  );
}

/** A run that ended in error is the command's error: its message says what to do. */
/** A finished run: an error unless it ended ok, else printed (JSON or a line). */
function printRun(run: BackupRun, json: boolean | undefined): void {
  if (run.state !== 'ok') {
    throw new HangarError('E_BACKUP_FAILED', `${run.kind} ${run.id} failed: ${run.message ?? 'no reason given'}`);
  }
  if (json) printJson(run);
  else process.stdout.write(`${describeRun(run)}\n`);
}

function printStatus(host: string, status: BackupStatus): void {
  const lines: string[] = [];
  if (!status.settings)
    lines.push(`${host} backs nothing up yet; set it up with: hangar backup set ${host} --path DIR`);
  else {
    lines.push(`paths:      ${status.settings.paths.join(', ')}`);
    if (status.settings.excludes) lines.push(`excludes:   ${status.settings.excludes.join(', ')}`);
    lines.push(`repository: ${status.repository}`);
    lines.push(`schedule:   ${describeBackupSchedule(status.settings)}`);
  }
  lines.push(`restic:     ${status.restic_version ?? `missing: ${status.restic_missing}`}`);
  if (status.running)
    lines.push(`running:    ${status.running.kind} ${status.running.id}, started ${ago(status.running.started_at)}`);
  if (status.last) {
    lines.push(
      `last run:   ${status.last.state} ${ago(status.last.started_at)}` +
        (status.last.snapshot ? ` (snapshot ${status.last.snapshot})` : '') +
        (status.last.message ? `: ${status.last.message}` : ''),
    );
  } else lines.push('last run:   none yet');
  if (status.last_ok && status.last_ok.id !== status.last?.id)
    lines.push(`last ok:    ${ago(status.last_ok.started_at)} (snapshot ${status.last_ok.snapshot})`);
  if (status.next_at !== null) lines.push(`next run:   ${new Date(status.next_at).toLocaleString()}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const errors = status.recent.filter((r) => r.state === 'error');
  if (errors.length > 0) {
    process.stdout.write('\nrecent errors:\n');
    process.stdout.write(
      table(
        ['RUN', 'KIND', 'WHEN', 'ERROR'],
        errors.map((r) => [r.id, r.kind, ago(r.started_at), r.message ?? '']),
      ),
    );
  }
}

/** `30m`, `6h`, `1d`: seconds. */
export function parseInterval(text: string): number {
  const seconds = parseBackupInterval(text);
  if (seconds === undefined) throw new HangarError('E_BAD_REQUEST', `--every ${text}: ${BACKUP_INTERVAL_EXPECTED}`);
  return seconds;
}

function parseCount(text: string, flag: string): number {
  if (!/^\d+$/.test(text))
    throw new HangarError('E_BAD_REQUEST', `${flag} ${text}: expected a whole number of snapshots`);
  return Number(text);
}

/** ` (leaving out *.log, tmp)`, or nothing without excludes. */
function describeExcludes(excludes: string[] | undefined): string {
  return excludes && excludes.length > 0 ? ` (leaving out ${excludes.join(', ')})` : '';
}

/** "1 file", "2 files", "0 files". */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
