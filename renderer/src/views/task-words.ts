import { visibleText, type TaskInfo, type TaskState } from '../api/index.js';

// What the Tasks view and the palette both say about a task (kept out of the lazily loaded view).

/** A task's state as the user reads it: the agent's own states say what it does, not how Hangar tracks it. */
export const TASK_STATE_LABELS: Record<TaskState, string> = {
  queued: 'queued',
  starting: 'starting',
  running: 'working',
  waiting_input: 'needs you',
  paused: 'paused',
  completed: 'completed',
  error: 'error',
  cancelled: 'cancelled',
};

/** The first line of a prompt, for a list row or a palette entry. */
export function promptTitle(task: TaskInfo): string {
  return visibleText(task.spec.prompt.trim().split('\n')[0] ?? '');
}

/** A task can be opened in a terminal once a host runs it in a session, until it is cancelled. */
export function canOpen(task: TaskInfo): boolean {
  return task.host !== null && task.session !== null && task.state !== 'queued' && task.state !== 'cancelled';
}

/** Text of several lines (a prompt) shown as lines: each line's control characters as escapes, as visibleText does. */
export function visibleLines(text: string): string {
  return text.split('\n').map(visibleText).join('\n');
}
