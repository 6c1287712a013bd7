import { useEffect, useRef, useState, type ReactNode } from 'react';
import { badFields, describeError, type CoreApi, type HostView, type TaskInfo } from '../api/index.js';

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
  const [fields, setFields] = useState<Map<string, string>>(new Map());
  const [busy, setBusy] = useState(false);
  const promptBox = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (focusRequest > 0) promptBox.current?.focus();
  }, [focusRequest]);

  const problem = (field: string): string | undefined => {
    for (const [path, message] of fields) if (fieldOf(path) === field) return message;
    return undefined;
  };
  const described = (field: string) =>
    problem(field) ? { 'aria-invalid': true, 'aria-describedby': `new-task-${field}-error` } : {};
  const fieldError = (field: string): ReactNode => {
    const message = problem(field);
    return message ? (
      <span className="field-error" id={`new-task-${field}-error`}>
        {message}
      </span>
    ) : null;
  };

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
      <label>
        Prompt
        <textarea
          ref={promptBox}
          rows={4}
          value={prompt}
          onChange={(event) => setPrompt(event.target.value)}
          placeholder="Fix the failing test in src/parse.ts"
          {...described('prompt')}
        />
      </label>
      {fieldError('prompt')}
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
      <label>
        Needs (optional)
        <input
          value={needs}
          onChange={(event) => setNeeds(event.target.value)}
          placeholder="claude, os:linux, label:gpu"
          {...described('needs')}
        />
      </label>
      {fieldError('needs')}
      <label>
        Working directory (optional)
        <input
          value={cwd}
          onChange={(event) => setCwd(event.target.value)}
          placeholder="~/src/app (default: the host's home)"
          {...described('cwd')}
        />
      </label>
      {fieldError('cwd')}
      <label>
        Repository (optional)
        <input
          value={repo}
          onChange={(event) => setRepo(event.target.value)}
          placeholder="~/src/app: a git worktree of its own, on branch hangar/task-…"
          {...described('repo')}
        />
      </label>
      {fieldError('repo')}
      <label>
        Ref (optional)
        <input
          value={ref}
          onChange={(event) => setRef(event.target.value)}
          placeholder="with a repository: main, a tag or a commit (default: its HEAD)"
          {...described('ref')}
        />
      </label>
      {fieldError('ref')}
      <button type="submit" disabled={busy || prompt.trim() === ''}>
        {busy ? 'Queueing…' : 'Queue task'}
      </button>
      {error && (
        <p className="host-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
