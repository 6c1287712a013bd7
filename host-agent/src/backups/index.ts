import {
  BackupRestoreParams,
  HangarError,
  toHangarError,
  type BackupRun,
  type BackupSettings,
  type BackupSnapshot,
  type BackupStatus,
  type Disposable,
  type PublishHostEvent,
} from '@hangar/shared';
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { lstat, readdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BackupStore, type RunEnd } from './backup-store.js';
import {
  checkBackupPath,
  expandHome,
  finishRestore,
  prepareRestoreTarget,
  removeLeftStaging,
  stopLeftRestic,
  type RestoreTarget,
} from './paths.js';
import {
  RESTIC_INSTALL,
  RESTIC_STOP_MS,
  isMissingRepository,
  resticFailure,
  resticVersion,
  runRestic,
  type ResticOptions,
  type ResticResult,
} from './restic.js';

import { backupPasswordFile, ensureBackupKey } from './key.js';

export { backupPasswordFile, readBackupKey } from './key.js';

export interface BackupServiceOptions {
  db: Database.Database;
  /** The agent's data directory: the password file and the default repository live in backups/ there. */
  dataDir: string;
  publish: PublishHostEvent;
  logger: Logger;
  /** The restic binary (default: restic on PATH). */
  resticPath?: string;
  /**
   * How long a second of a schedule's `every` lasts, in ms: 1000, except in tests (a test-only
   * clock, `serve --backup-second-ms`), where a schedule of 1m then comes round in well under one.
   */
  secondMs?: number;
}

/** How often the schedule looks whether a backup is due (scaled with secondMs). */
const TICK_SECONDS = 15;
/** Progress events at most this often: a terminal's bar redraws at about this rate anyway. */
const PROGRESS_GAP_MS = 250;
/**
 * A restore's look at its staging directory walks all of it (O(files)): the next look waits this
 * many times as long as the last took (at least PROGRESS_GAP_MS), so that on a restore of a million
 * files the walks take a tenth of the time at most, not all of it beside restic.
 */
const WALK_GAP_FACTOR = 9;
const RECENT_RUNS = 10;
const VERSION_TTL_MS = 60_000;

type RestoreParams = z.output<typeof BackupRestoreParams>;

const StatusLine = z.object({
  message_type: z.literal('status'),
  percent_done: z.number().default(0),
  total_files: z.number().default(0),
  files_done: z.number().default(0),
  total_bytes: z.number().default(0),
  bytes_done: z.number().default(0),
});
const SummaryLine = z.object({
  message_type: z.literal('summary'),
  snapshot_id: z.string(),
  data_added: z.number().default(0),
  total_files_processed: z.number().default(0),
  total_bytes_processed: z.number().default(0),
});
const ErrorLine = z.object({
  message_type: z.literal('error'),
  item: z.string().optional(),
  error: z.object({ Op: z.string().optional(), Path: z.string().optional(), Err: z.unknown() }).partial().optional(),
});
/** A line of `restic ls --json`: a node of the snapshot's tree (the first line, the snapshot, is not one). */
const LsNode = z.object({
  struct_type: z.literal('node'),
  type: z.string(),
  path: z.string(),
  size: z.number().nonnegative().optional(),
});
const SnapshotsJson = z.array(
  z.object({
    id: z.string(),
    short_id: z.string(),
    time: z.string(),
    paths: z.array(z.string()),
    hostname: z.string(),
  }),
);

/**
 * Backups of this host: restic snapshots of the directories the user named, on demand and on a
 * schedule, into a repository whose password was made here (backups/password, 0600) and never
 * leaves this host. One restic run at a time: a second backup joins the running one, a restore
 * waits its turn (refused while another runs). Each run is recorded in agent.db; a keep policy is
 * applied (restic forget --prune) after each successful backup.
 */
export class BackupService implements Disposable {
  private readonly store: BackupStore;
  /** The run going on; `ended`, for a restore: its work done (what it wrote removed, if it failed). */
  private current: { run: BackupRun; kill: () => Promise<void>; ended?: Promise<void> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly secondMs: number;
  private readonly bin: string;
  private version: { value: string | null; at: number } | undefined;
  /** The removal of what restores a killed agent left: done before any new restore begins. */
  private readonly leftovers: Promise<void>;

  constructor(private readonly options: BackupServiceOptions) {
    this.store = new BackupStore(options.db);
    // A restore the agent was killed during left its staging directory: removed, before the runs
    // are marked ended (which forgets which they were).
    this.leftovers = this.removeLeftovers(this.store.interruptedStaging());
    this.store.endInterrupted(Date.now());
    this.secondMs = options.secondMs ?? 1000;
    this.bin = options.resticPath ?? 'restic';
    this.schedule();
  }

  /** The schedule's look every TICK_SECONDS, armed only while a schedule is set (`--every`). */
  private schedule(): void {
    const on = !this.disposed && (this.store.settings()?.settings.every_s ?? null) !== null;
    if (on === (this.timer !== undefined)) return;
    if (on) {
      this.timer = setInterval(() => this.tick(), TICK_SECONDS * this.secondMs);
      this.timer.unref();
    } else {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  get defaultRepository(): string {
    return join(this.options.dataDir, 'backups', 'restic');
  }

  async set(settings: BackupSettings): Promise<BackupStatus> {
    for (const path of settings.paths) await checkBackupPath(path, this.options.dataDir);
    this.store.setSettings(settings, Date.now());
    this.schedule();
    this.options.logger.info({ paths: settings.paths.length, every_s: settings.every_s }, 'backup settings changed');
    return this.status();
  }

  async status(): Promise<BackupStatus> {
    const stored = this.store.settings();
    const version = await this.resticVersion();
    return {
      settings: stored?.settings ?? null,
      repository: stored?.settings.repository ?? this.defaultRepository,
      restic_version: version,
      restic_missing: version === null ? RESTIC_INSTALL : null,
      running: this.current?.run ?? null,
      last: this.store.lastBackup(false) ?? null,
      last_ok: this.store.lastBackup(true) ?? null,
      next_at: this.nextAt(),
      recent: this.store.recent(RECENT_RUNS),
    };
  }

  /**
   * restic's version, asked again at most once a minute: the core asks for the status every few
   * seconds while it waits for a run, and an install (or removal) of restic is seen within that.
   */
  private async resticVersion(): Promise<string | null> {
    if (this.version && Date.now() - this.version.at < VERSION_TTL_MS) return this.version.value;
    const value = await resticVersion(this.bin);
    this.version = { value, at: Date.now() };
    return value;
  }

  /** Starts a backup (or joins the one running) and answers with its run at once. */
  now(trigger: 'user' | 'schedule' = 'user'): BackupRun {
    if (this.current?.run.kind === 'backup') return this.current.run;
    this.refuseWhileBusy('back up');
    const stored = this.store.settings();
    if (!stored) {
      throw new HangarError(
        'E_BACKUP_NOT_SET',
        'nothing to back up on this host yet: name what to back up with: hangar backup set <host> --path DIR',
      );
    }
    const run = this.begin({ kind: 'backup', trigger, snapshot: null, to: null, staging: null });
    void this.finish(run, (onKill) => this.backup(run, stored.settings, onKill));
    return run;
  }

  async snapshots(): Promise<BackupSnapshot[]> {
    const restic = await this.restic();
    const result = await runRestic(restic, ['snapshots', '--json']).done;
    if (result.code !== 0) {
      if (isMissingRepository(result)) return [];
      throw resticFailure('could not list the snapshots', result, restic.repository, this.options.dataDir);
    }
    return SnapshotsJson.parse(JSON.parse(result.stdout))
      .map((s) => ({ id: s.id, short_id: s.short_id, time: s.time, paths: s.paths, hostname: s.hostname }))
      .reverse();
  }

  /** Checks the target and starts the restore; answers with its run at once. */
  async restore(params: RestoreParams): Promise<BackupRun> {
    await this.leftovers;
    this.refuseWhileBusy('restore');
    const to = await prepareRestoreTarget(params.to, this.options.dataDir);
    try {
      this.refuseWhileBusy('restore');
    } catch (error) {
      await rm(to.staging, { recursive: true, force: true });
      throw error;
    }
    const run = this.begin({
      kind: 'restore',
      trigger: 'user',
      snapshot: params.snapshot,
      to: to.target,
      staging: to.staging,
    });
    const ended = this.finish(run, (onKill) => this.restoreInto(run, to, params, onKill));
    if (this.current?.run.id === run.id) this.current.ended = ended;
    return run;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.schedule();
    if (this.current) {
      // restic stops on SIGINT and removes its lock; the run is recorded as interrupted now, while
      // the database is still open. The agent ends only once restic has (SIGKILL after
      // RESTIC_STOP_MS): a restic still writing would hold the lock when a new agent starts.
      // A restore stopped so removes what it wrote into its staging directory: waited for too, so
      // that nothing of it is left once the agent is gone.
      const { kill, ended } = this.current;
      this.store.endInterrupted(Date.now());
      this.current = undefined;
      await kill();
      await ended;
    }
  }

  private async removeLeftovers(left: { staging: string; target: string | null }[]): Promise<void> {
    for (const { staging, target } of left) {
      try {
        const stopped = await stopLeftRestic(staging, RESTIC_STOP_MS);
        if (stopped > 0)
          this.options.logger.info(
            { staging, stopped },
            'stopped the restic a restore left running when the agent stopped',
          );
        if (await removeLeftStaging(staging, target))
          this.options.logger.info({ staging }, 'removed what a restore left when the agent stopped during it');
      } catch (error) {
        this.options.logger.warn({ err: toHangarError(error), staging }, 'could not remove what a restore left');
      }
    }
  }

  /** A run the agent stops during goes no further than the restic it runs (which was asked to stop). */
  private refuseWhileStopping(): void {
    if (this.disposed) throw new HangarError('E_UNAVAILABLE', 'the agent stopped during this run; run it again');
  }

  private refuseWhileBusy(what: string): void {
    if (!this.current) return;
    const { run } = this.current;
    throw new HangarError(
      'E_BACKUP_BUSY',
      `cannot ${what} now: a ${run.kind} (${run.id}) is running on this host since ${new Date(run.started_at).toISOString()}; wait for it to end (hangar backup status <host>) and try again`,
      { run: run.id },
    );
  }

  private begin(run: Pick<BackupRun, 'kind' | 'trigger' | 'snapshot' | 'to'> & { staging: string | null }): BackupRun {
    const started = this.store.insertRun({
      ...run,
      id: `b-${randomBytes(8).toString('hex')}`,
      started_at: Date.now(),
    });
    this.current = { run: started, kill: async () => undefined };
    this.options.logger.info({ run: started.id, kind: run.kind, trigger: run.trigger }, 'backup run started');
    this.options.publish('backup.updated', { run: started });
    return started;
  }

  private async finish(
    run: BackupRun,
    work: (onKill: (kill: () => Promise<void>) => void) => Promise<RunEnd>,
  ): Promise<void> {
    let end: RunEnd;
    try {
      end = await work((kill) => {
        if (this.current?.run.id === run.id) this.current.kill = kill;
      });
    } catch (error) {
      end = { state: 'error', message: toHangarError(error).message };
    }
    if (this.disposed) return;
    this.current = undefined;
    const ended = this.store.endRun(run.id, end, Date.now());
    this.options.logger.info(
      { run: run.id, kind: run.kind, state: ended.state, message: ended.message },
      'backup run ended',
    );
    this.options.publish('backup.updated', { run: ended });
  }

  private async backup(
    run: BackupRun,
    settings: BackupSettings,
    onKill: (kill: () => Promise<void>) => void,
  ): Promise<RunEnd> {
    const paths: string[] = [];
    for (const path of settings.paths) paths.push(await checkBackupPath(path, this.options.dataDir));
    const restic = await this.restic(settings);
    // Never in a snapshot: the agent's data directory (its keys, the backup password), nor a local
    // repository (a backup of itself).
    // Real paths (the backed-up ones are), each as a literal pattern: restic reads --exclude as a glob.
    const excluded = [await realpath(this.options.dataDir)];
    if (restic.repository.startsWith('/')) excluded.push(await realpath(restic.repository));
    let summary: z.infer<typeof SummaryLine> | undefined;
    const unreadable: string[] = [];
    let sentAt = 0;
    const restic$ = runRestic(
      restic,
      [
        'backup',
        '--json',
        // The user's own, as restic's patterns; `=` so that one starting with "-" is never an option.
        ...(settings.excludes ?? []).map((pattern) => `--exclude=${pattern}`),
        // The agent's after them: restic takes "!pattern" as a negation and the last pattern that
        // matches decides, so a user's "!*" or "!data" before these would put the keys back in.
        ...excluded.flatMap((path) => ['--exclude', literalPattern(path)]),
        '--',
        ...paths,
      ],
      (line) => {
        const message = parseLine(line);
        const status = StatusLine.safeParse(message);
        if (status.success) {
          if (Date.now() - sentAt < PROGRESS_GAP_MS) return;
          sentAt = Date.now();
          const s = status.data;
          this.options.publish('backup.progress', {
            run: run.id,
            percent: Math.min(1, Math.max(0, s.percent_done)),
            bytes_done: s.bytes_done,
            total_bytes: s.total_bytes,
            files_done: Math.round(s.files_done),
            total_files: Math.round(s.total_files),
          });
          return;
        }
        const done = SummaryLine.safeParse(message);
        if (done.success) summary = done.data;
        const failed = ErrorLine.safeParse(message);
        if (failed.success && unreadable.length < 5)
          unreadable.push(failed.data.item ?? failed.data.error?.Path ?? '?');
      },
    );
    onKill(restic$.kill);
    const result = await restic$.done;
    // 3: the snapshot was made, but some files could not be read.
    if ((result.code !== 0 && result.code !== 3) || !summary) {
      throw resticFailure('the backup failed', result, restic.repository, this.options.dataDir);
    }
    const end: RunEnd = {
      state: 'ok',
      snapshot: summary.snapshot_id,
      files: summary.total_files_processed,
      bytes: summary.total_bytes_processed,
      added_bytes: summary.data_added,
    };
    const notes: string[] = [];
    if (result.code === 3) {
      notes.push(
        `some files could not be read and are not in the snapshot (${unreadable.join(', ')}): the agent's user must be able to read them`,
      );
    }
    const prune = await this.applyKeep(restic, settings, onKill).catch(
      (error: unknown) => toHangarError(error).message,
    );
    if (prune) notes.push(`the snapshot was made, but the keep policy was not applied: ${prune}`);
    if (notes.length > 0) end.message = notes.join('; ');
    this.options.publish('backup.progress', {
      run: run.id,
      percent: 1,
      bytes_done: end.bytes!,
      total_bytes: end.bytes!,
      files_done: end.files!,
      total_files: end.files!,
    });
    return end;
  }

  /** restic forget --prune with the --keep-* options set: nothing without any (every snapshot stays). */
  private async applyKeep(
    restic: ResticOptions,
    settings: BackupSettings,
    onKill: (kill: () => Promise<void>) => void,
  ): Promise<void> {
    const keep = Object.entries(settings.keep).filter((entry): entry is [string, number] => entry[1] !== undefined);
    if (keep.length === 0) return;
    const args = ['forget', '--prune', '--json', ...keep.flatMap(([kind, n]) => [`--keep-${kind}`, String(n)])];
    // forget --prune holds the repository's exclusive lock: stopped (and waited for) as a backup is.
    const restic$ = runRestic(restic, args);
    onKill(restic$.kill);
    const result = await restic$.done;
    if (result.code !== 0)
      throw resticFailure('restic forget --prune failed', result, restic.repository, this.options.dataDir);
  }

  private async restoreInto(
    run: BackupRun,
    to: RestoreTarget,
    params: RestoreParams,
    onKill: (kill: () => Promise<void>) => void,
  ): Promise<RunEnd> {
    let totals = { files: 0, bytes: 0 };
    try {
      const restic = await this.restic();
      // --include is a restic pattern: the path is escaped so that `[`, `*` or `?` in it match only themselves.
      const included = (params.include ?? []).map((path) => ({ path, real: expandHome(path) }));
      const include = included.flatMap(({ real }) => ['--include', literalPattern(real)]);
      this.refuseWhileStopping();
      totals = await this.restoreTotals(
        restic,
        params,
        included.map(({ real }) => real),
        onKill,
      );
      this.refuseWhileStopping();
      const restic$ = runRestic(restic, ['restore', params.snapshot, '--target', to.staging, ...include]);
      onKill(restic$.kill);
      // restic 0.14's restore has no --json: how far it got is what it wrote into the staging
      // directory (the agent's own), against what the snapshot holds. One look at a time.
      let watching = true;
      let wake: (() => void) | undefined;
      const watched = (async () => {
        let gap = PROGRESS_GAP_MS;
        while (watching) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, gap);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (!watching) break;
          const began = performance.now();
          const written = await sizeOf(to.staging, () => watching).catch(() => undefined);
          gap = Math.max(PROGRESS_GAP_MS, WALK_GAP_FACTOR * (performance.now() - began));
          if (written && watching) this.publishRestoreProgress(run, written, totals, false);
        }
      })();
      const result = await restic$.done.finally(() => {
        watching = false;
        // A gap grown long on a big restore does not hold its end back.
        wake?.();
      });
      await watched;
      if (result.code !== 0) this.restoreFailed(params, result, restic.repository);
      // restic restores nothing for an --include that is not in the snapshot, and says ok.
      const missing: { path: string }[] = [];
      for (const one of included) {
        if (!(await lstat(join(to.staging, one.real)).catch(() => undefined))) missing.push(one);
      }
      if (missing.length > 0) {
        throw new HangarError(
          'E_NOT_FOUND',
          `nothing restored: ${missing.map(({ path }) => path).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in snapshot ${params.snapshot}: name a file or directory under the paths it holds (hangar backup ls <host> lists each snapshot's paths)`,
        );
      }
    } catch (error) {
      // What a failed (or stopped) restore wrote is in the agent's own staging directory: removed.
      await rm(to.staging, { recursive: true, force: true });
      throw error;
    }
    await finishRestore(to, params.to);
    const written = await sizeOf(to.target);
    this.publishRestoreProgress(run, written, totals, true);
    return { state: 'ok', files: written.files, bytes: written.bytes };
  }

  /**
   * What the restore will write: the files (and links) and bytes under the snapshot's paths, or
   * under the --include ones, from `restic ls --json` (one line a node, read as they come).
   */
  private async restoreTotals(
    restic: ResticOptions,
    params: RestoreParams,
    included: string[],
    onKill: (kill: () => Promise<void>) => void,
  ): Promise<{ files: number; bytes: number }> {
    const totals = { files: 0, bytes: 0 };
    const wanted = (path: string) =>
      included.length === 0 ||
      included.some((one) => path === one || path.startsWith(one.endsWith('/') ? one : `${one}/`));
    const restic$ = runRestic(restic, ['ls', '--json', params.snapshot], (line) => {
      const node = LsNode.safeParse(parseLine(line));
      if (!node.success || node.data.type === 'dir' || !wanted(node.data.path)) return;
      totals.files += 1;
      if (node.data.type === 'file') totals.bytes += node.data.size ?? 0;
    });
    onKill(restic$.kill);
    const result = await restic$.done;
    if (result.code !== 0) this.restoreFailed(params, result, restic.repository);
    return totals;
  }

  /** A restore's progress, as a backup's: at most every PROGRESS_GAP_MS while it runs, and at the end. */
  private publishRestoreProgress(
    run: BackupRun,
    written: { files: number; bytes: number },
    totals: { files: number; bytes: number },
    done: boolean,
  ): void {
    const total_bytes = done ? written.bytes : Math.max(totals.bytes, written.bytes);
    const total_files = done ? written.files : Math.max(totals.files, written.files);
    const fraction = done
      ? 1
      : total_bytes > 0
        ? written.bytes / total_bytes
        : total_files > 0
          ? written.files / total_files
          : 0;
    this.options.publish('backup.progress', {
      run: run.id,
      // Not 100% before restic ended: it still sets times and modes.
      percent: done ? 1 : Math.min(0.99, Math.max(0, fraction)),
      bytes_done: written.bytes,
      total_bytes,
      files_done: written.files,
      total_files,
    });
  }

  private restoreFailed(params: RestoreParams, result: ResticResult, repository: string): never {
    if (/no matching ID found|invalid id|no snapshot found/i.test(result.stderr)) {
      throw new HangarError(
        'E_NOT_FOUND',
        `no snapshot ${params.snapshot} in ${repository}; list them with: hangar backup ls <host>`,
      );
    }
    throw resticFailure('the restore failed', result, repository, this.options.dataDir);
  }

  /** restic's options for the repository, made (restic init) the first time it is used. */
  private async restic(settings = this.store.settings()?.settings): Promise<ResticOptions> {
    const repository = settings?.repository ?? this.defaultRepository;
    const options: ResticOptions = {
      bin: this.bin,
      repository: repository.startsWith('/') ? expandHome(repository) : repository,
      passwordFile: ensureBackupKey(this.options.dataDir),
      cacheDir: join(this.options.dataDir, 'backups', 'cache'),
    };
    const config = await runRestic(options, ['cat', 'config']).done;
    if (config.code === 0) return options;
    if (!isMissingRepository(config))
      throw resticFailure('could not open the repository', config, repository, this.options.dataDir);
    if (repository === this.defaultRepository)
      mkdirSync(join(this.options.dataDir, 'backups'), { recursive: true, mode: 0o700 });
    const init = await runRestic(options, ['init']).done;
    if (init.code !== 0)
      throw resticFailure('could not make the repository (restic init)', init, repository, this.options.dataDir);
    this.options.logger.info({ repository }, 'backup repository made');
    return options;
  }

  private nextAt(): number | null {
    const stored = this.store.settings();
    if (!stored || stored.settings.every_s === null) return null;
    const last = this.store.recent(1, "kind = 'backup'")[0];
    const from = last ? last.started_at : stored.updated_at;
    // A start "in the future": the clock was set back since. How long ago it really was is not
    // known, so the backup is due now (counting from it would wait as long as the clock jumped).
    const now = Date.now();
    if (from > now) return now;
    return from + stored.settings.every_s * this.secondMs;
  }

  private tick(): void {
    if (this.disposed || this.current) return;
    const next = this.nextAt();
    if (next === null || next > Date.now()) return;
    try {
      this.now('schedule');
    } catch (error) {
      this.options.logger.warn({ err: toHangarError(error) }, 'the scheduled backup did not start');
    }
  }
}

/**
 * A path as a restic pattern that matches only itself: restic's --exclude and --include are globs
 * (Go's filepath.Match for each part, with \\ escaping), so `*`, `?`, `[` and `\\` in a name are escaped.
 */
export function literalPattern(path: string): string {
  return path.replace(/[\\*?[]/g, (c) => `\\${c}`);
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    // restic prints a few lines that are not JSON even with --json (restic init's text): not ours to read.
    return undefined;
  }
}

/**
 * Files and bytes under a directory a restore wrote (links are counted, not followed). `keepOn`:
 * asked at each directory; once false the walk ends early (undefined), as restic has ended.
 */
export async function sizeOf(dir: string): Promise<{ files: number; bytes: number }>;
export async function sizeOf(dir: string, keepOn: () => boolean): Promise<{ files: number; bytes: number } | undefined>;
export async function sizeOf(dir: string, keepOn = () => true): Promise<{ files: number; bytes: number } | undefined> {
  let files = 0;
  let bytes = 0;
  let ended = false;
  const walk = async (path: string): Promise<void> => {
    if (ended || !keepOn()) {
      ended = true;
      return;
    }
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else {
        files += 1;
        if (entry.isFile()) bytes += (await lstat(child)).size;
      }
    }
  };
  await walk(dir);
  return ended ? undefined : { files, bytes };
}

/** `hangar-agent backup unlock`, on the host: restic unlock on this host's repository (stale locks only). */
export async function unlockRepository(dataDir: string, db: Database.Database, resticPath = 'restic'): Promise<string> {
  const settings = new BackupStore(db).settings()?.settings;
  const repository = settings?.repository ?? join(dataDir, 'backups', 'restic');
  // No key yet means no backup yet, so nothing to unlock: never make a key here (it would not be
  // the repository's, if one exists elsewhere).
  if (!existsSync(backupPasswordFile(dataDir))) {
    throw new HangarError(
      'E_BACKUP_NOT_SET',
      `no backup has run with the agent data in ${dataDir} (no key in ${backupPasswordFile(dataDir)}), so there is nothing to unlock`,
    );
  }
  const options: ResticOptions = {
    bin: resticPath,
    repository: expandHome(repository),
    passwordFile: backupPasswordFile(dataDir),
    cacheDir: join(dataDir, 'backups', 'cache'),
  };
  const result = await runRestic(options, ['unlock']).done;
  if (result.code !== 0) throw resticFailure('restic unlock failed', result, repository, dataDir);
  return repository;
}
