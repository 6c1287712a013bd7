import { useState } from 'react';
import {
  BACKUP_INTERVAL_EXPECTED,
  badFields,
  describeError,
  formatBackupInterval,
  parseBackupInterval,
  type BackupRun,
  type BackupSnapshot,
  type BackupStatus,
  type CoreApi,
} from '../api/index.js';
import { TextField, useFieldErrors } from './field-errors.js';
import { DialogError } from './form-dialog.js';

const KEEP_KINDS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type KeepKind = (typeof KEEP_KINDS)[number];

/** One entry a line, blank lines dropped: paths, excludes, includes. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

/** A bad path of a core call (`settings.paths.1`) is about `field` (`paths`) once `prefix` is dropped. */
function under(prefix: string) {
  return (path: string, field: string) => {
    const rest = path.startsWith(prefix) ? path.slice(prefix.length) : path;
    return rest === field || rest.startsWith(`${field}.`);
  };
}

/**
 * What a host backs up, how often and what it keeps: `hangar backup set`'s options as a form, sent
 * through the same core call (backups.set), checked by the same schema (BackupSettings). Filled
 * from what is set; saving replaces it, as `backup set` does.
 */
export function BackupSettingsForm({
  api,
  host,
  status,
  onSaved,
}: {
  api: CoreApi;
  host: string;
  status: BackupStatus;
  onSaved(status: BackupStatus): void;
}) {
  const set = status.settings;
  const [paths, setPaths] = useState(set?.paths.join('\n') ?? '');
  const [every, setEvery] = useState(set?.every_s ? formatBackupInterval(set.every_s) : '');
  const [keep, setKeep] = useState<Record<KeepKind, string>>(
    () =>
      Object.fromEntries(KEEP_KINDS.map((kind) => [kind, set?.keep[kind]?.toString() ?? ''])) as Record<
        KeepKind,
        string
      >,
  );
  const [excludes, setExcludes] = useState(set?.excludes?.join('\n') ?? '');
  const [repository, setRepository] = useState(set?.repository ?? '');
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState<string>();
  const [busy, setBusy] = useState(false);
  const errors = useFieldErrors('backup-settings', under('settings.'));
  const { setFields, described, fieldError } = errors;

  return (
    <form
      className="run-job"
      aria-label="Backup settings"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        setError(undefined);
        setSaved(undefined);
        setFields(new Map());
        const every_s = every.trim() === '' ? null : parseBackupInterval(every);
        if (every_s === undefined) {
          const message = `every: ${BACKUP_INTERVAL_EXPECTED}`;
          setError(message);
          setFields(new Map([['settings.every_s', BACKUP_INTERVAL_EXPECTED]]));
          return;
        }
        const keeping: Partial<Record<KeepKind, number>> = {};
        for (const kind of KEEP_KINDS) if (keep[kind].trim() !== '') keeping[kind] = Number(keep[kind].trim());
        const excluded = lines(excludes);
        setBusy(true);
        api
          .call('backups.set', {
            host,
            settings: {
              paths: lines(paths),
              every_s,
              keep: keeping,
              repository: repository.trim() || null,
              ...(excluded.length > 0 ? { excludes: excluded } : {}),
            },
          })
          .then(
            (next) => {
              setBusy(false);
              setSaved(`Saved: ${host} backs up ${next.settings?.paths.join(', ') ?? ''}`);
              onSaved(next);
            },
            (e: unknown) => {
              setBusy(false);
              setError(describeError(e));
              setFields(badFields(e));
            },
          );
      }}
    >
      <h2>What {host} backs up</h2>
      <TextField
        label="Paths on the host (one a line)"
        field="paths"
        errors={errors}
        value={paths}
        onValue={setPaths}
        placeholder={'~/src\n/srv/data'}
        rows={3}
      />
      <TextField
        label="Leave out (restic --exclude patterns, one a line)"
        field="excludes"
        errors={errors}
        value={excludes}
        onValue={setExcludes}
        placeholder={'*.log\nnode_modules'}
        rows={2}
      />
      <TextField
        label="Every (empty: on demand only)"
        field="every_s"
        errors={errors}
        value={every}
        onValue={setEvery}
        placeholder="6h"
      />
      <fieldset className="backup-keep">
        <legend>Keep (empty: every snapshot)</legend>
        {KEEP_KINDS.map((kind) => (
          <label key={kind}>
            {kind}
            <input
              value={keep[kind]}
              inputMode="numeric"
              size={4}
              onChange={(event) => setKeep({ ...keep, [kind]: event.target.value })}
              {...described(`keep.${kind}`)}
            />
          </label>
        ))}
      </fieldset>
      {fieldError('keep')}
      <TextField
        label="Repository (empty: in the agent's data)"
        field="repository"
        errors={errors}
        value={repository}
        onValue={setRepository}
        placeholder="/mnt/backups/restic or sftp:nas:/srv/restic"
      />
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save backup settings'}
      </button>
      <DialogError error={error} />
      {saved && <p role="status">{saved}</p>}
    </form>
  );
}

/**
 * A snapshot into a new or empty directory on the host: `hangar backup restore` as a form, through
 * the same core call (backups.restore), which answers once the restore ended; its progress comes as
 * a backup's does (the view shows it while `busy`).
 */
export function RestoreForm({
  api,
  host,
  snapshots,
  busy,
  onStart,
  onEnd,
}: {
  api: CoreApi;
  host: string;
  snapshots: BackupSnapshot[];
  busy: boolean;
  onStart(): void;
  onEnd(outcome: { run: BackupRun } | { error: string }): void;
}) {
  const [snapshot, setSnapshot] = useState('latest');
  const [to, setTo] = useState('');
  const [include, setInclude] = useState('');
  const [error, setError] = useState<string>();
  const errors = useFieldErrors('backup-restore', under(''));
  const { setFields, described, fieldError } = errors;

  return (
    <form
      className="run-job"
      aria-label="Restore a snapshot"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        setError(undefined);
        setFields(new Map());
        const included = lines(include);
        onStart();
        api
          .call('backups.restore', {
            host,
            snapshot,
            to: to.trim(),
            ...(included.length > 0 ? { include: included } : {}),
          })
          .then(
            ({ run }) => onEnd({ run }),
            (e: unknown) => {
              setError(describeError(e));
              setFields(badFields(e));
              onEnd({ error: describeError(e) });
            },
          );
      }}
    >
      <h2>Restore</h2>
      <label>
        Snapshot
        <select value={snapshot} onChange={(event) => setSnapshot(event.target.value)} {...described('snapshot')}>
          <option value="latest">latest</option>
          {snapshots.map((s) => (
            <option key={s.id} value={s.short_id}>
              {s.short_id} {new Date(s.time).toLocaleString()}
            </option>
          ))}
        </select>
      </label>
      {fieldError('snapshot')}
      <TextField
        label="Into (a new or empty directory on the host)"
        field="to"
        errors={errors}
        value={to}
        onValue={setTo}
        placeholder="~/restored"
      />
      <TextField
        label="Only these paths (optional, one a line, as they were on the host)"
        field="include"
        errors={errors}
        value={include}
        onValue={setInclude}
        rows={2}
      />
      <button type="submit" disabled={busy}>
        Restore
      </button>
      <DialogError error={error} />
    </form>
  );
}
