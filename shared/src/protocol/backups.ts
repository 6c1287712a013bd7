import { z } from 'zod';
import { argumentText } from './sessions.js';

/**
 * Backups: restic snapshots of directories the user names on a host, taken by that host's agent on
 * a schedule and on demand, into a restic repository whose password is made on the host and never
 * leaves it. README "Backups" says what each field means to a user.
 */

/** A path on the host: absolute or `~`/`~/…`, without a `..` part (a path from the network is never trusted). */
export const BackupHostPath = argumentText(4096)
  .min(1, { error: 'the path is empty: name a directory on the host' })
  .refine((p) => p.startsWith('/') || p === '~' || p.startsWith('~/'), {
    error: 'expected an absolute path on the host, or one starting with ~/',
  })
  .refine((p) => !p.split('/').includes('..'), { error: 'a path may not contain a ".." part: name it directly' })
  .refine((p) => !/[\n\r]/.test(p), { error: 'a path may not contain a line break' });

/** How many snapshots of each kind `restic forget --prune` keeps after a successful run (restic's --keep-*). */
const keepCount = z
  .number({ error: 'expected a number of snapshots' })
  .int({ error: 'expected a whole number of snapshots' })
  .min(1, { error: 'keep at least 1 (leave the option out to not limit it)' })
  .max(100_000);
export const BackupKeep = z
  .object({
    last: keepCount.optional(),
    hourly: keepCount.optional(),
    daily: keepCount.optional(),
    weekly: keepCount.optional(),
    monthly: keepCount.optional(),
    yearly: keepCount.optional(),
  })
  .strict();
export type BackupKeep = z.infer<typeof BackupKeep>;

/**
 * Where the snapshots go: a local directory on the host (absolute), or restic's `sftp:`, `rest:`,
 * `s3:`, `b2:`, `azure:`, `gs:` or `swift:` forms. Credentials come only from the host's own
 * environment or files (restic's AWS_ACCESS_KEY_ID, ~/.ssh/config, …): a password in the location
 * itself (`rest:https://user:secret@…`) would travel over the link and sit in the agent's database.
 */
export const BackupRepository = argumentText(1024)
  .min(1)
  .refine((r) => !r.startsWith('-'), {
    error: 'a repository may not start with "-" (restic would read it as an option)',
  })
  .refine((r) => !/[\n\r]/.test(r), { error: 'a repository may not contain a line break' })
  .refine((r) => (r.startsWith('/') ? !r.split('/').includes('..') : /^(sftp|rest|s3|b2|azure|gs|swift):./.test(r)), {
    error:
      'expected an absolute directory on the host or a restic location: sftp:…, rest:…, s3:…, b2:…, azure:…, gs:… or swift:…',
  })
  .refine((r) => !sftpHostIsOption(r), {
    error:
      'the sftp host may not start with "-": restic hands it to ssh as its first argument, where it would be read as an option (-oProxyCommand=… runs a command); name the host itself',
  })
  .refine((r) => !/:\/\/[^/@]*:[^/@]*@/.test(r), {
    error:
      "the location carries a password: keep credentials on the host (restic reads RESTIC_REST_USERNAME/RESTIC_REST_PASSWORD, AWS_* and the like from the agent's environment) and give the location without it",
  });

/**
 * restic runs `ssh <host> [-p port] [-l user] -s sftp` for an sftp: repository, the host first and
 * with no `--` before it: a host starting with "-" is an option to ssh. restic reads the host as
 * what follows `sftp:` up to the first ":" (after a `user@`), or the URL's host in `sftp://…`
 * (after the last "@" of the part before the first "/"). Refused whenever "-" starts it or follows
 * any "@" there, which covers both readings.
 */
function sftpHostIsOption(repository: string): boolean {
  let authority: string;
  if (repository.startsWith('sftp://')) authority = repository.slice('sftp://'.length).split('/')[0]!;
  else if (repository.startsWith('sftp:')) authority = repository.slice('sftp:'.length).split(':')[0]!;
  else return false;
  return authority.startsWith('-') || authority.includes('@-');
}

export const MAX_BACKUP_EXCLUDES = 64;
export const MAX_BACKUP_EXCLUDE_CHARS = 1024;

/**
 * A pattern of restic's `--exclude`, taken as restic takes it: a glob (`*`, `?`, `[…]`, `**`, `\\`
 * escaping) matched against each file's path (a pattern without "/" matches a name anywhere; one
 * starting with "/" is from the root). Refused here as restic would refuse it: an unclosed `[` or a
 * trailing `\\`.
 */
export const BackupExclude = z
  .string()
  .max(MAX_BACKUP_EXCLUDE_CHARS, {
    error: `an exclude pattern is longer than ${MAX_BACKUP_EXCLUDE_CHARS} characters: shorten it (a * or ** stands for any part of a name or path)`,
  })
  .refine((text) => !text.includes('\0'), { error: 'may not contain a NUL byte (\\0): no program can be given one' })
  .min(1, { error: 'an exclude pattern is empty: name a file or directory pattern, like *.log or /srv/data/tmp' })
  .refine((p) => !/[\n\r]/.test(p), { error: 'an exclude pattern may not contain a line break' })
  .refine((p) => !isBadGlob(p), {
    error:
      'not a pattern restic takes: a "[" is never closed by "]", or it ends with a lone "\\" (write \\[ for a "[" itself)',
  });

/** What Go's filepath.Match (restic's patterns) refuses: an unclosed character class, a trailing escape. */
function isBadGlob(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '\\') {
      if (i + 1 >= pattern.length) return true;
      i += 1;
    } else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '^') j += 1;
      let closed = false;
      for (let first = true; j < pattern.length; j += 1, first = false) {
        if (pattern[j] === '\\') j += 1;
        else if (pattern[j] === ']' && !first) {
          closed = true;
          break;
        }
      }
      if (!closed) return true;
      i = j;
    }
  }
  return false;
}

/** Shortest schedule: a snapshot a minute is already more than restic's locking is made for. */
export const MIN_BACKUP_EVERY_S = 60;
export const MAX_BACKUP_PATHS = 64;

export const BackupSettings = z
  .object({
    paths: z
      .array(BackupHostPath)
      .min(1, { error: 'name at least one directory to back up (--path DIR)' })
      .max(MAX_BACKUP_PATHS, { error: `at most ${MAX_BACKUP_PATHS} paths` }),
    /** Seconds between scheduled runs; null: only on demand. */
    every_s: z
      .number()
      .int()
      .min(MIN_BACKUP_EVERY_S, { error: 'the schedule is at least 1m apart' })
      .max(366 * 24 * 3600, { error: 'the schedule is at most a year apart' })
      .nullable()
      .default(null),
    keep: BackupKeep.default({}),
    /** Default: `<agent data dir>/backups/restic` on the host. */
    repository: BackupRepository.nullable().default(null),
    /** restic --exclude patterns of the user's (none when left out). */
    excludes: z
      .array(BackupExclude)
      .max(MAX_BACKUP_EXCLUDES, { error: `at most ${MAX_BACKUP_EXCLUDES} exclude patterns` })
      .optional(),
  })
  .strict();
export type BackupSettings = z.output<typeof BackupSettings>;
export type BackupSettingsInput = z.input<typeof BackupSettings>;

/**
 * The settings as an agent reports them (BackupStatus): the same fields, checked the same way, but a
 * key this side does not know (at the top or in `keep`) is dropped, not refused. A newer agent may
 * have a field an older core has not heard of (`excludes` was one), and the core must still read the
 * rest. What is sent to an agent (BackupSettings: backup.set, backups.set) stays strict, so a typo
 * is an error and not a setting silently left out.
 */
export const ReportedBackupSettings = z.object({
  ...BackupSettings.shape,
  keep: z.object(BackupKeep.shape).default({}),
});

/** Seconds as `--every` takes them: `30m`, `6h`, `1d` (`90s` when no whole minute). */
export function formatBackupInterval(seconds: number): string {
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

const INTERVAL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * `30m`, `6h`, `1d` (`90s`) as seconds, as `hangar backup set --every` and the window's Schedule
 * take it; undefined for anything else. Whether it is long enough is BackupSettings' own check.
 */
export function parseBackupInterval(text: string): number | undefined {
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim());
  return match ? Number(match[1]) * INTERVAL_UNITS[match[2]!]! : undefined;
}
export const BACKUP_INTERVAL_EXPECTED = 'expected a number and a unit, like 30m, 6h or 1d';

/**
 * A schedule and keep policy in the words of `hangar backup set`'s options, the same in `hangar
 * backup status` and the window: `every 6h, keeping daily 7, weekly 4`.
 */
export function describeBackupSchedule(settings: Pick<BackupSettings, 'every_s' | 'keep'>): string {
  const keep = Object.entries(settings.keep)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  return (
    (settings.every_s ? `every ${formatBackupInterval(settings.every_s)}` : 'on demand only (no --every)') +
    (keep ? `, keeping ${keep}` : ', keeping every snapshot')
  );
}

export const BackupRunId = z.string().regex(/^b-[0-9a-f]{16}$/, { error: 'expected a run id like b-1a2b3c4d5e6f7a8b' });

/** One restic run of the agent: a backup (by the user or the schedule) or a restore. */
export const BackupRun = z.object({
  id: BackupRunId,
  kind: z.enum(['backup', 'restore']),
  trigger: z.enum(['user', 'schedule']),
  state: z.enum(['running', 'ok', 'error']),
  started_at: z.number().int(),
  finished_at: z.number().int().nullable(),
  /** The snapshot made (backup) or restored from (restore): restic's full id. */
  snapshot: z.string().nullable(),
  /** Files and bytes looked at (backup: the paths' whole size; restore: what was written). */
  files: z.number().int().nonnegative().nullable(),
  bytes: z.number().nonnegative().nullable(),
  /** New data the snapshot added to the repository, after deduplication and compression. */
  added_bytes: z.number().nonnegative().nullable(),
  /** Why it failed and what to do (error), or what went wrong without failing it (ok: unreadable files, a failed prune). */
  message: z.string().nullable(),
  /** Restore: the directory on the host it wrote into. */
  to: z.string().nullable(),
});
export type BackupRun = z.infer<typeof BackupRun>;

/** How far the running backup has got (restic's --json status lines). */
export const BackupProgress = z.object({
  run: BackupRunId,
  /** 0…1 */
  percent: z.number().min(0).max(1),
  bytes_done: z.number().nonnegative(),
  total_bytes: z.number().nonnegative(),
  files_done: z.number().int().nonnegative(),
  total_files: z.number().int().nonnegative(),
});
export type BackupProgress = z.infer<typeof BackupProgress>;

export const BackupStatus = z.object({
  /** Null: nothing set up on this host yet (hangar backup set). */
  settings: ReportedBackupSettings.nullable(),
  /** Where snapshots go (the default one when settings name none). */
  repository: z.string(),
  /** restic's version on the host, or null with `restic_missing` saying how to install it. */
  restic_version: z.string().nullable(),
  restic_missing: z.string().nullable(),
  running: BackupRun.nullable(),
  /** The last backup that ended, ok or not, and the last that succeeded. */
  last: BackupRun.nullable(),
  last_ok: BackupRun.nullable(),
  /** When the schedule runs next (ms since the epoch); null without one. */
  next_at: z.number().int().nullable(),
  /** The newest runs, newest first (at most 10). */
  recent: z.array(BackupRun),
});
export type BackupStatus = z.infer<typeof BackupStatus>;

/** restic's snapshot id, short (8 hex) or full, or `latest`. */
export const SnapshotRef = z.string().regex(/^(?:[0-9a-f]{8,64}|latest)$/, {
  error: 'expected a snapshot id (8-64 hex digits, see hangar backup ls) or latest',
});

export const BackupSnapshot = z.object({
  id: z.string(),
  short_id: z.string(),
  /** restic's time, ISO 8601. */
  time: z.string(),
  paths: z.array(z.string()),
  hostname: z.string(),
});
export type BackupSnapshot = z.infer<typeof BackupSnapshot>;

export const BackupRestoreParams = z
  .object({
    snapshot: SnapshotRef,
    /** A new or empty directory on the host: a restore never writes over existing files. */
    to: BackupHostPath,
    /** Only these paths of the snapshot (absolute, as they were on the host). */
    include: z.array(BackupHostPath).max(64).optional(),
  })
  .strict();
export type BackupRestoreParams = z.input<typeof BackupRestoreParams>;

export const BackupUpdatedEvent = z.object({ run: BackupRun });
