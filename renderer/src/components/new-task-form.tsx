import { useEffect, useRef, useState } from 'react';
import { badFields, describeError, type CoreApi, type HostView, type TaskInfo } from '../api/index.js';
import { TextField, useFieldErrors } from './field-errors.js';
import { DialogError } from './form-dialog.js';

/** Which of the form's fields a bad field of tasks.add (`spec.needs.1`) belongs to. */
const FIELDS = ['prompt', 'needs', 'cwd', 'repo', 'ref'] as const;
function fieldOf(path: string): 'host' | (typeof FIELDS)[number] | undefined {
  const [first, second] = path.split('.');
  if (first === 'host') return 'host';
  if (first !== 'spec') return undefined;
  return FIELDS.find((field) => field === second);
}

/**
 * A prompt for a coding agent, queued on this computer: any host that fits takes it, or only the
 * one chosen. What the core refuses is said under the field it names, and in one line below.
 */
export function NewTaskForm({
  api,
  hosts,
  focusRequest,
  onAdded,
}: {
  api: CoreApi;
  hosts: HostView[];
  /** The prompt takes the focus whenever this changes ("New task…" in the palette). */
  focusRequest: number;
  onAdded(task: TaskInfo): void;
}) {
  const [prompt, setPrompt] = useState('');
  const [host, setHost] = useState('');
  const [needs, setNeeds] = useState('');
  const [cwd, setCwd] = useState('');
  const [repo, setRepo] = useState('');
  const [ref, setRef] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const errors = useFieldErrors('new-task', (path, field) => fieldOf(path) === field);
  const { setFields, described, fieldError } = errors;
  const promptBox = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (focusRequest > 0) promptBox.current?.focus();
  }, [focusRequest]);

  return (
    <form
      className="run-job"
      aria-label="New task"
      onSubmit={(event) => {
        event.preventDefault();
        setBusy(true);
        setError(undefined);
        setFields(new Map());
        const spec = {
          prompt,
          needs: needs.split(/[\s,]+/).filter(Boolean),
          ...(cwd.trim() ? { cwd: cwd.trim() } : {}),
          ...(repo.trim() ? { repo: repo.trim() } : {}),
          ...(ref.trim() ? { ref: ref.trim() } : {}),
        };
        api.call('tasks.add', { spec, ...(host ? { host } : {}) }).then(
          ({ task }) => {
            setBusy(false);
            setPrompt('');
            onAdded(task);
          },
          (e: unknown) => {
            setBusy(false);
            setError(describeError(e));
            setFields(badFields(e));
          },
        );
      }}
    >
      <h2>New task</h2>
      <TextField
        label="Prompt"
        field="prompt"
        errors={errors}
        value={prompt}
        onValue={setPrompt}
        placeholder="Fix the failing test in src/parse.ts"
        rows={4}
        ref={promptBox}
      />
      <label>
        Host
        <select value={host} onChange={(event) => setHost(event.target.value)} {...described('host')}>
          <option value="">Any host that fits</option>
          {hosts.map((h) => (
            <option key={h.name} value={h.name}>
              {h.name}
            </option>
          ))}
        </select>
      </label>
      {fieldError('host')}
      <TextField
        label="Needs (optional)"
        field="needs"
        errors={errors}
        value={needs}
        onValue={setNeeds}
        placeholder="claude, os:linux, label:gpu"
      />
      <TextField
        label="Working directory (optional)"
        field="cwd"
        errors={errors}
        value={cwd}
        onValue={setCwd}
        placeholder="~/src/app (default: the host's home)"
      />
      <TextField
        label="Repository (optional)"
        field="repo"
        errors={errors}
        value={repo}
        onValue={setRepo}
        placeholder="~/src/app: a git worktree of its own, on branch hangar/task-…"
      />
      <TextField
        label="Ref (optional)"
        field="ref"
        errors={errors}
        value={ref}
        onValue={setRef}
        placeholder="with a repository: main, a tag or a commit (default: its HEAD)"
      />
      <button type="submit" disabled={busy || prompt.trim() === ''}>
        {busy ? 'Queueing…' : 'Queue task'}
      </button>
      <DialogError error={error} />
    </form>
  );
}
