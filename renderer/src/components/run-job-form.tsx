import { useState } from 'react';
import { describeError, type CoreApi, type HostView } from '../api/index.js';
import type { JobEntry } from '../views/use-hangar-data.js';
import { DialogError, Field } from './form-dialog.js';

/** Host, command and optional artifact globs; submits a job with the host's default executor. */
export function RunJobForm({
  api,
  hosts,
  onSubmitted,
}: {
  api: CoreApi;
  hosts: HostView[];
  onSubmitted(entry: JobEntry): void;
}) {
  const [host, setHost] = useState(hosts[0]?.name ?? '');
  const [command, setCommand] = useState('');
  const [artifacts, setArtifacts] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  if (hosts.length === 0) return <p className="empty-state">Add a host to run jobs on it.</p>;
  return (
    <form
      className="run-job"
      aria-label="Run a job"
      onSubmit={(event) => {
        event.preventDefault();
        setBusy(true);
        setError(undefined);
        const globs = artifacts.split(/[\s,]+/).filter(Boolean);
        api.call('jobs.submit', { host: host || hosts[0]!.name, spec: { command, artifacts: globs } }).then(
          (result) => {
            setBusy(false);
            setCommand('');
            onSubmitted(result);
          },
          (e: unknown) => {
            setBusy(false);
            setError(describeError(e));
          },
        );
      }}
    >
      <h2>Run a job</h2>
      <label>
        Host
        <select value={host} onChange={(event) => setHost(event.target.value)}>
          {hosts.map((h) => (
            <option key={h.name} value={h.name}>
              {h.name}
            </option>
          ))}
        </select>
      </label>
      <Field label="Command" required value={command} onValue={setCommand} placeholder="make test" />
      <Field
        label="Artifacts (globs, optional)"
        value={artifacts}
        onValue={setArtifacts}
        placeholder="dist/**, *.log"
      />
      <button type="submit" disabled={busy || command.trim() === ''}>
        {busy ? 'Submitting…' : 'Run job'}
      </button>
      <DialogError error={error} />
    </form>
  );
}
