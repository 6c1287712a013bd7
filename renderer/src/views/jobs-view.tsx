import { useEffect, useState } from 'react';
import {
  describeError,
  FINAL_JOB_STATES,
  formatBytes,
  visibleText,
  type CoreApi,
  type HostView,
  type JobDetail,
} from '../api/index.js';
import { DialogError } from '../components/form-dialog.js';
import { JobLog } from '../components/job-log.js';
import { RunJobForm } from '../components/run-job-form.js';
import type { JobEntry } from './use-hangar-data.js';
import type { Theme } from './theme.js';

export interface JobsViewProps {
  api: CoreApi;
  hosts: HostView[];
  jobs: JobEntry[];
  selected: { host: string; id: string } | undefined;
  theme: Theme;
  onSelect(job: { host: string; id: string }): void;
  onSubmitted(entry: JobEntry): void;
}

/** Run a job, follow its log, cancel, retry, download artifacts; the history on the left. */
export default function JobsView(props: JobsViewProps) {
  const { jobs, selected } = props;
  return (
    <div className="jobs">
      <div className="jobs-side">
        <RunJobForm api={props.api} hosts={props.hosts} onSubmitted={props.onSubmitted} />
        <h2>History</h2>
        {jobs.length === 0 ? (
          <p className="empty-state">No jobs yet. Run one above, or press Ctrl+K and type a command.</p>
        ) : (
          <ul className="job-list" aria-label="Job history">
            {jobs.map(({ host, job }) => (
              <li key={`${host}/${job.id}`}>
                <button
                  type="button"
                  className={selected?.id === job.id && selected.host === host ? 'job-item selected' : 'job-item'}
                  aria-current={selected?.id === job.id && selected.host === host}
                  onClick={() => props.onSelect({ host, id: job.id })}
                >
                  <span className={`job-state state-${job.state}`}>{job.state}</span>
                  <span className="job-command">{visibleText(job.command)}</span>
                  <span className="job-host">{host}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
      {selected ? (
        <JobDetailPanel key={`${selected.host}/${selected.id}`} {...props} selected={selected} />
      ) : (
        <p className="empty-state">Select a job to see its log.</p>
      )}
    </div>
  );
}

function JobDetailPanel({
  api,
  jobs,
  selected,
  theme,
  onSubmitted,
}: JobsViewProps & { selected: { host: string; id: string } }) {
  const entry = jobs.find((j) => j.host === selected.host && j.job.id === selected.id);
  const [detail, setDetail] = useState<JobDetail>();
  const [error, setError] = useState<string>();
  const [message, setMessage] = useState<string>();
  const state = entry?.job.state ?? detail?.state;
  const attempt = entry?.job.attempt ?? detail?.attempt ?? 0;

  useEffect(() => {
    api.call('jobs.get', { host: selected.host, id: selected.id }).then(
      (found) => setDetail(found.job),
      (e: unknown) => setError(describeError(e)),
    );
    // Refetch when the state changes: artifacts appear once the job has finished.
  }, [api, selected.host, selected.id, state]);

  const final = state !== undefined && FINAL_JOB_STATES.includes(state);
  const act = (what: 'jobs.cancel' | 'jobs.retry') =>
    api.call(what, { host: selected.host, id: selected.id }).then(
      (result) => onSubmitted(result),
      (e: unknown) => setError(describeError(e)),
    );
  const job = entry?.job ?? detail;
  return (
    <div className="job-detail">
      <header className="job-header">
        <h2 className="job-title">{job ? visibleText(job.command) : selected.id}</h2>
        <span className={`job-state state-${state}`} role="status" aria-label="Job status">
          {state ?? 'loading…'}
          {job?.exit_code !== null && job?.exit_code !== undefined ? ` (exit ${job.exit_code})` : ''}
        </span>
        <span className="job-meta">
          {selected.id} on {selected.host}
          {attempt > 1 ? ` · attempt ${attempt}` : ''}
        </span>
        {!final && (
          <button type="button" onClick={() => void act('jobs.cancel')}>
            Cancel job
          </button>
        )}
        {final && (
          <button type="button" onClick={() => void act('jobs.retry')}>
            Retry job
          </button>
        )}
      </header>
      {job?.error && <p className="host-error">{visibleText(job.error)}</p>}
      <DialogError error={error} />
      {detail && detail.artifacts.length > 0 && (
        <ul className="artifacts" aria-label="Artifacts">
          {detail.artifacts.map((artifact) => (
            <li key={artifact.path}>
              <button
                type="button"
                aria-label={`Download ${visibleText(artifact.path)}`}
                onClick={() =>
                  api.call('artifacts.download', { host: selected.host, id: selected.id, path: artifact.path }).then(
                    (r) => setMessage(`Saved ${visibleText(artifact.path)} to ${r.files[0]?.file ?? r.dir}`),
                    (e: unknown) => setError(describeError(e)),
                  )
                }
              >
                ⤓ {visibleText(artifact.path)} <span className="muted">({formatBytes(artifact.size)})</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {message && <p role="status">{message}</p>}
      {attempt > 0 ? (
        <JobLog api={api} host={selected.host} id={selected.id} attempt={attempt} theme={theme} />
      ) : (
        <p className="muted">Waiting for the job to start…</p>
      )}
    </div>
  );
}
