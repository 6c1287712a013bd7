import { useEffect, useState } from 'react';
import { FINAL_TASK_STATES, visibleText, type CoreApi, type HostView, type TaskInfo } from '../api/index.js';
import { NewTaskForm } from '../components/new-task-form.js';
import { TASK_STATE_LABELS, canOpen, promptTitle, visibleLines } from './task-words.js';
import type { TasksData } from './use-tasks.js';

export interface TasksViewProps {
  api: CoreApi;
  hosts: HostView[];
  data: TasksData;
  selected: string | undefined;
  /** "New task…" in the palette bumps this: the prompt takes the focus. */
  focusRequest: number;
  onSelect(id: string): void;
  onAdded(task: TaskInfo): void;
  /** Shows the task's terminal session in the Terminals view. */
  onOpen(task: TaskInfo): void;
  /** Asks first (a dialog), then cancels. */
  onCancel(task: TaskInfo): void;
}

/** Ages are shown to the minute; this keeps them current without asking the core anything. */
const AGE_TICK_MS = 15_000;

function useNow(): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const tick = setInterval(() => setNow(Date.now()), AGE_TICK_MS);
    return () => clearInterval(tick);
  }, []);
  return now;
}

function age(at: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** What the user should read under a task: the agent's words when it waits, why a task waits or failed. */
function note(task: TaskInfo): string | null {
  if (task.state === 'queued') return task.reason === null ? null : visibleText(task.reason);
  if (task.state === 'error') return visibleText(task.reason ?? task.detail ?? '') || null;
  return task.detail === null ? null : visibleText(task.detail);
}

/** New task form and the list of tasks (this computer's queue and every host's) on the left; the chosen one on the right. */
export default function TasksView(props: TasksViewProps) {
  const { data, selected } = props;
  const now = useNow();
  const tasks = data.tasks ?? [];
  const chosen = tasks.find((t) => t.id === selected);
  return (
    <div className="jobs">
      <div className="jobs-side">
        <NewTaskForm api={props.api} hosts={props.hosts} focusRequest={props.focusRequest} onAdded={props.onAdded} />
        <h2>Tasks</h2>
        {data.error && (
          <p className="host-error" role="alert">
            {data.error}
          </p>
        )}
        {data.hostErrors.map((h) => (
          <p key={h.host} className="host-error">
            Tasks on {h.host} are not shown: {h.message}
          </p>
        ))}
        {data.hostTruncated.map((h) => (
          <p key={h.host} className="task-words">
            {h.count} older tasks on {h.host} are not listed (a host lists its newest).
          </p>
        ))}
        {data.tasks === undefined ? (
          <p className="empty-state">Listing tasks…</p>
        ) : tasks.length === 0 ? (
          <p className="empty-state">No tasks yet. Write a prompt above, and a host that fits runs an agent on it.</p>
        ) : (
          <ul className="job-list" aria-label="Tasks">
            {tasks.map((task) => (
              <li key={task.id} aria-label={`Task ${promptTitle(task)}`}>
                <button
                  type="button"
                  className={task.id === selected ? 'job-item task-item selected' : 'job-item task-item'}
                  aria-current={task.id === selected}
                  onClick={() => props.onSelect(task.id)}
                >
                  <span className={`job-state task-state-${task.state}`}>{TASK_STATE_LABELS[task.state]}</span>
                  <span className="job-command">{promptTitle(task)}</span>
                  <span className="job-host">
                    {task.host ?? 'queue'} · {age(task.created_at, now)}
                    {task.worktree ? ` · ${visibleText(task.worktree.branch)}` : ''}
                  </span>
                  {note(task) && <span className="task-note">{note(task)}</span>}
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
      {chosen ? (
        <TaskDetail task={chosen} now={now} onOpen={props.onOpen} onCancel={props.onCancel} />
      ) : (
        <p className="empty-state">
          {selected ? 'That task is no longer listed.' : 'Select a task to see where it runs and what it waits for.'}
        </p>
      )}
    </div>
  );
}

function TaskDetail({
  task,
  now,
  onOpen,
  onCancel,
}: {
  task: TaskInfo;
  now: number;
  onOpen(task: TaskInfo): void;
  onCancel(task: TaskInfo): void;
}) {
  const final = FINAL_TASK_STATES.includes(task.state);
  const words = note(task);
  return (
    <div className="job-detail" aria-label={`Task ${task.id}`} role="region">
      <header className="job-header">
        <span className={`job-state task-state-${task.state}`} role="status" aria-label="Task status">
          {TASK_STATE_LABELS[task.state]}
          {task.exit_code !== null ? ` (exit ${task.exit_code})` : ''}
        </span>
        <span className="job-meta">
          {task.id} · {task.host ? `on ${task.host}` : "in this computer's queue"}
          {task.session ? ` · session ${task.session}` : ''} · added {age(task.created_at, now)}
          {task.finished_at !== null ? ` · ended ${age(task.finished_at, now)}` : ''}
        </span>
        {canOpen(task) && (
          <button type="button" onClick={() => onOpen(task)}>
            Open terminal
          </button>
        )}
        {!final && (
          <button type="button" className="danger" onClick={() => onCancel(task)}>
            Cancel task…
          </button>
        )}
      </header>
      {words && (
        <p className={task.state === 'error' ? 'host-error' : 'task-words'} aria-label="What the task waits for">
          {words}
        </p>
      )}
      <pre className="task-prompt" aria-label="Task prompt">
        {visibleLines(task.spec.prompt)}
      </pre>
      {task.prompt_cut && (
        <p className="task-words">
          The listing carries the prompt's beginning; <code>hangar task show {task.id}</code> prints it whole.
        </p>
      )}
      <dl className="task-spec">
        <dt>Agent</dt>
        <dd>
          <code>{visibleText(task.spec.agent.join(' '))}</code>
        </dd>
        <dt>Needs</dt>
        <dd>{task.spec.needs.length > 0 ? visibleText(task.spec.needs.join(', ')) : 'nothing in particular'}</dd>
        {task.spec.repo !== undefined && (
          <>
            <dt>Repository</dt>
            <dd>
              {visibleText(task.spec.repo)}
              {task.spec.ref !== undefined ? ` at ${visibleText(task.spec.ref)}` : ''}
            </dd>
          </>
        )}
        <dt>Working directory</dt>
        <dd>
          {task.worktree
            ? `${visibleText(task.worktree.path)} (branch ${visibleText(task.worktree.branch)})`
            : task.spec.cwd
              ? visibleText(task.spec.cwd)
              : "the host's home"}
        </dd>
        <dt>Runner</dt>
        <dd>{task.spec.runner}</dd>
      </dl>
    </div>
  );
}
