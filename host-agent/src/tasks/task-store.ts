import { FINAL_TASK_STATES, TaskSpec, TaskState, type TaskInfo } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { agentDb } from '../store/stored-rows.js';
import { taskWorktree } from './worktree.js';

const Row = z.object({
  id: z.string(),
  spec: z.string(),
  state: TaskState,
  session: z.string(),
  device: z.string(),
  created_at: z.number().int(),
  claimed_at: z.number().int(),
  updated_at: z.number().int(),
  finished_at: z.number().int().nullable(),
  detail: z.string().nullable(),
  reason: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  worktree_failed: z.number().int(),
});
type Row = z.infer<typeof Row>;

/** A task's reason carries at most this (TaskInfo.reason). */
const MAX_REASON_CHARS = 4096;

/** What may change of a task after its claim. */
export type TaskChange = Partial<Pick<TaskInfo, 'state' | 'detail' | 'reason' | 'exit_code'>>;

/** The tasks this host claimed (agent.db `tasks`), kept across agent restarts. */
export class TaskStore {
  constructor(
    private readonly db: Database.Database,
    /** Where a task with a repo has its worktree (tasks/<id>/work): made after its claim, never moved. */
    private readonly dataDir: string,
  ) {}

  insert(
    task: { id: string; spec: TaskSpec; session: string; device: string; created_at: number },
    now: number,
  ): TaskInfo {
    this.db
      .prepare(
        `INSERT INTO tasks (id, spec, state, session, device, created_at, claimed_at, updated_at)
         VALUES (?, ?, 'starting', ?, ?, ?, ?, ?)`,
      )
      .run(task.id, JSON.stringify(task.spec), task.session, task.device, task.created_at, now, now);
    return this.get(task.id)!;
  }

  get(id: string): TaskInfo | undefined {
    const row = agentDb.row(this.db, 'tasks', Row, this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id));
    return row && this.info(row);
  }

  /** Newest first. */
  list(limit = 200): TaskInfo[] {
    const rows = this.db.prepare('SELECT * FROM tasks ORDER BY claimed_at DESC, id LIMIT ?').all(limit);
    return agentDb.rows(this.db, 'tasks', Row, rows).map((row) => this.info(row));
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM tasks').get() as { n: number }).n;
  }

  /** git could not make the task's worktree (what it made was removed): the task has none to show. */
  markWorktreeFailed(id: string): void {
    this.db.prepare('UPDATE tasks SET worktree_failed = 1 WHERE id = ?').run(id);
  }

  /** Tasks not yet in a final state (starting, running, waiting for the user, paused). */
  active(): TaskInfo[] {
    const final = FINAL_TASK_STATES.map(() => '?').join(', ');
    const rows = this.db.prepare(`SELECT * FROM tasks WHERE state NOT IN (${final})`).all(...FINAL_TASK_STATES);
    return agentDb.rows(this.db, 'tasks', Row, rows).map((row) => this.info(row));
  }

  /**
   * Applies a change; returns the task after it, or undefined when nothing changed. A task that
   * ended stays as it ended (cancelled while its session was being made: not running after all).
   */
  update(id: string, change: TaskChange, now: number): TaskInfo | undefined {
    const before = this.get(id);
    if (!before || FINAL_TASK_STATES.includes(before.state)) return undefined;
    const after = { ...before, ...change };
    // TaskInfo carries at most MAX_REASON_CHARS of a reason (git's or a session's words can be longer).
    if (after.reason !== null && after.reason.length > MAX_REASON_CHARS)
      after.reason = `${after.reason.slice(0, MAX_REASON_CHARS - 1)}…`;
    if (after.state === before.state && after.detail === before.detail && after.reason === before.reason) {
      if (after.exit_code === before.exit_code) return undefined;
    }
    const finished = FINAL_TASK_STATES.includes(after.state) ? (before.finished_at ?? now) : null;
    this.db
      .prepare(
        `UPDATE tasks SET state = ?, detail = ?, reason = ?, exit_code = ?, updated_at = ?, finished_at = ? WHERE id = ?`,
      )
      .run(after.state, after.detail, after.reason, after.exit_code, now, finished, id);
    return this.get(id);
  }

  private info(row: Row): TaskInfo {
    const spec = agentDb.json(this.db, 'tasks', TaskSpec, row.spec);
    return {
      id: row.id,
      spec,
      state: row.state,
      host: null,
      session: row.session,
      created_at: row.created_at,
      claimed_at: row.claimed_at,
      updated_at: row.updated_at,
      finished_at: row.finished_at,
      detail: row.detail,
      reason: row.reason,
      exit_code: row.exit_code,
      // A task with a repo has its worktree's place from its claim (made just after); none when git failed.
      ...(spec.repo !== undefined && row.worktree_failed === 0 ? { worktree: taskWorktree(this.dataDir, row.id) } : {}),
    };
  }
}
