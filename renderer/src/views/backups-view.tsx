import { useCallback, useEffect, useState } from 'react';
import {
  describeBackupSchedule,
  describeError,
  formatBytes,
  visibleText,
  type BackupRun,
  type BackupSnapshot,
  type BackupStatus,
  type CoreApi,
  type CoreEventData,
  type HostView,
} from '../api/index.js';
import { BackupSettingsForm, RestoreForm } from '../components/backup-forms.js';
import { DialogError } from '../components/form-dialog.js';

export interface BackupsViewProps {
  api: CoreApi;
  hosts: HostView[];
}

/** What a run says in one line: its snapshot and sizes, or why it failed. */
function describeRun(run: BackupRun): string {
  const when = new Date(run.started_at).toLocaleString();
  if (run.state === 'running') return `${run.kind} running since ${when}`;
  if (run.state === 'error') return `${run.kind} failed (${when}): ${visibleText(run.message ?? '')}`;
  const sizes = `${run.files ?? 0} files, ${formatBytes(run.bytes ?? 0)}`;
  return run.kind === 'restore'
    ? `restored ${run.snapshot} into ${run.to}: ${sizes} (${when})`
    : `snapshot ${run.snapshot}: ${sizes}, ${formatBytes(run.added_bytes ?? 0)} added (${when})`;
}

/**
 * One host's backups, through the same calls as `hangar backup`: what it backs up and when, its
 * last and next run, its snapshots, Back up now, a form for what `backup set` sets and one for
 * `backup restore` (both with restic's progress while they run). README "Backups".
 */
export default function BackupsView({ api, hosts }: BackupsViewProps) {
  const online = hosts.filter((h) => h.status === 'online');
  const [host, setHost] = useState<string>();
  const chosen = host ?? online[0]?.name;
  const [status, setStatus] = useState<BackupStatus>();
  const [snapshots, setSnapshots] = useState<BackupSnapshot[]>();
  const [error, setError] = useState<string>();
  const [progress, setProgress] = useState<CoreEventData<'backup.progress'>>();
  const [busy, setBusy] = useState<'backup' | 'restore'>();
  const [outcome, setOutcome] = useState<{ kind: 'backup' | 'restore'; text: string }>();

  const refresh = useCallback(
    (name: string) => {
      setError(undefined);
      Promise.all([api.call('backups.status', { host: name }), api.call('backups.list', { host: name })]).then(
        ([s, l]) => {
          setStatus(s);
          setSnapshots(l.snapshots);
        },
        (failure: unknown) => setError(describeError(failure)),
      );
    },
    [api],
  );

  useEffect(() => {
    setStatus(undefined);
    setSnapshots(undefined);
    setOutcome(undefined);
    if (chosen !== undefined) refresh(chosen);
  }, [chosen, refresh]);

  useEffect(() => {
    const subscription = api.on('backup.progress', (p) => {
      if (p.host === chosen) setProgress(p);
    });
    return () => void subscription.dispose();
  }, [api, chosen]);

  const backUpNow = () => {
    if (chosen === undefined) return;
    setBusy('backup');
    setOutcome(undefined);
    setProgress(undefined);
    api.call('backups.now', { host: chosen }).then(
      ({ run }) => {
        setOutcome({ kind: 'backup', text: describeRun(run) });
        setBusy(undefined);
        setProgress(undefined);
        refresh(chosen);
      },
      (failure: unknown) => {
        setOutcome({ kind: 'backup', text: describeError(failure) });
        setBusy(undefined);
        setProgress(undefined);
      },
    );
  };

  if (chosen === undefined) return <p className="empty-state">No host is online: backups are kept by each host.</p>;
  return (
    <div className="jobs">
      <div className="jobs-side">
        <h2>Backups</h2>
        <label>
          Host{' '}
          <select value={chosen} onChange={(event) => setHost(event.target.value)}>
            {online.map((h) => (
              <option key={h.name} value={h.name}>
                {h.name}
              </option>
            ))}
          </select>
        </label>
        <DialogError error={error} />
        {status && (
          <dl aria-label="Backup status">
            <dt>Paths</dt>
            <dd>
              {status.settings ? status.settings.paths.join(', ') : `none yet: hangar backup set ${chosen} --path DIR`}
            </dd>
            <dt>Repository</dt>
            <dd>{status.repository}</dd>
            <dt>Schedule</dt>
            <dd>
              {status.settings ? describeBackupSchedule(status.settings) : 'on demand only'}
              {status.next_at !== null && `, next ${new Date(status.next_at).toLocaleString()}`}
            </dd>
            <dt>Last run</dt>
            <dd>{status.last ? describeRun(status.last) : 'none yet'}</dd>
            {status.restic_missing && (
              <>
                <dt>restic</dt>
                <dd className="host-error">{status.restic_missing}</dd>
              </>
            )}
          </dl>
        )}
        <button type="button" disabled={busy !== undefined || !status?.settings} onClick={backUpNow}>
          Back up now
        </button>
        {busy && (
          <p role="status" aria-label={busy === 'backup' ? 'Backup progress' : 'Restore progress'}>
            {progress
              ? `${Math.floor(progress.percent * 100)}% ${formatBytes(progress.bytes_done)} / ${formatBytes(progress.total_bytes)}, ${progress.files_done} / ${progress.total_files} files`
              : busy === 'backup'
                ? 'backing up…'
                : 'restoring…'}
          </p>
        )}
        {outcome && <p aria-label={outcome.kind === 'backup' ? 'Backup outcome' : 'Restore outcome'}>{outcome.text}</p>}
        {status && (
          <BackupSettingsForm key={chosen} api={api} host={chosen} status={status} onSaved={() => refresh(chosen)} />
        )}
      </div>
      <div className="job-detail">
        <h2>Snapshots</h2>
        {snapshots === undefined ? (
          <p className="empty-state">Listing snapshots…</p>
        ) : snapshots.length === 0 ? (
          <p className="empty-state">No snapshots yet.</p>
        ) : (
          <ul className="job-list" aria-label="Snapshots">
            {snapshots.map((s) => (
              <li key={s.id} aria-label={`Snapshot ${s.short_id}`}>
                <code>{s.short_id}</code> {new Date(s.time).toLocaleString()} — {s.paths.join(', ')}
              </li>
            ))}
          </ul>
        )}
        {snapshots !== undefined && snapshots.length > 0 && (
          <RestoreForm
            key={chosen}
            api={api}
            host={chosen}
            snapshots={snapshots}
            busy={busy !== undefined}
            onStart={() => {
              setBusy('restore');
              setOutcome(undefined);
              setProgress(undefined);
            }}
            onEnd={(end) => {
              setBusy(undefined);
              setProgress(undefined);
              setOutcome({ kind: 'restore', text: 'run' in end ? describeRun(end.run) : end.error });
              refresh(chosen);
            }}
          />
        )}
      </div>
    </div>
  );
}
