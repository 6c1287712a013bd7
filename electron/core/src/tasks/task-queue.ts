import { TaskId, TaskSpec, type TaskInfo } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { coreDb } from '../state/stored-rows.js';

/**
 * This computer's queue of agent tasks (hangar.db `tasks`): a task waits here until a host claims
 * it, and is kept afterwards as a pointer to that host (which keeps the task's record from then on).
 */

/** queued: waits here; claimed: a host has it (see `host`); cancelled: left the queue unclaimed. */
const QueueState = z.enum(['queued', 'claimed', 'cancelled']);
const Row = z.object({
  id: TaskId,
  spec: z.string(),
  host_pin: z.string().nullable(),
  state: QueueState,
  host: z.string().nullable(),
  reason: z.string().nullable(),
  created_at: z.number().int(),
  updated_at: z.number().int(),
});
export type QueuedTask = Omit<z.infer<typeof Row>, 'spec'> & { spec: TaskSpec };

/** A task's reason carries at most this (TaskInfo.reason): each host's refusal adds to it. */
const MAX_REASON_CHARS = 4096;

/** How long one core may try to hand a task out before another may try (a core that died meanwhile). */
const LEASE_MS = 60_000;

export class TaskQueue {
  constructor(private readonly db: Database.Database) {}

  add(id: string, spec: TaskSpec, hostPin: string | undefined, now: number): QueuedTask {
    this.db
      .prepare(`INSERT INTO tasks (id, spec, host_pin, state, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?)`)
      .run(id, JSON.stringify(spec), hostPin ?? null, now, now);
    return this.get(id)!;
  }

  get(id: string): QueuedTask | undefined {
    return this.read(this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id));
  }

  /** Tasks still waiting for a host, oldest first. */
  queued(): QueuedTask[] {
    return this.db
      .prepare(`SELECT * FROM tasks WHERE state = 'queued' ORDER BY created_at, id`)
      .all()
      .map((row) => this.read(row)!);
  }

  /**
   * Takes the right to hand this task out now (no other core of this user is doing it): false when
   * it is not queued, or another holds the lease.
   */
  lease(id: string, now: number): boolean {
    const taken = this.db
      .prepare(`UPDATE tasks SET lease_until = ? WHERE id = ? AND state = 'queued' AND lease_until <= ?`)
      .run(now + LEASE_MS, id, now);
    return taken.changes === 1;
  }

  /**
   * Still queued: why no host took it (cut to what a task carries: many hosts, or one naming many
   * needs it lacks, say more). The lease is given back.
   */
  stillQueued(id: string, reason: string, now: number): void {
    const carried = reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS - 1)}…` : reason;
    this.db
      .prepare(`UPDATE tasks SET reason = ?, updated_at = ?, lease_until = 0 WHERE id = ? AND state = 'queued'`)
      .run(carried, now, id);
  }

  /**
   * About to ask `host` to claim it: kept (in `host`, while queued) so that, if the answer is lost or
   * this core dies before it, the next offer asks that host first: it may have the task. Null: the
   * host answered that it did not take it.
   */
  asking(id: string, host: string | null): void {
    this.db.prepare(`UPDATE tasks SET host = ? WHERE id = ? AND state = 'queued'`).run(host, id);
  }

  /** A host took it: from now on that host's record is the task's. False when it was cancelled meanwhile. */
  claimed(id: string, host: string, now: number): boolean {
    const done = this.db
      .prepare(
        `UPDATE tasks SET state = 'claimed', host = ?, reason = NULL, updated_at = ?, lease_until = 0 WHERE id = ? AND state = 'queued'`,
      )
      .run(host, now, id);
    return done.changes === 1;
  }

  /** Cancels a task still in the queue; false when it is not queued (claimed or cancelled already). */
  cancel(id: string, now: number): boolean {
    const done = this.db
      .prepare(`UPDATE tasks SET state = 'cancelled', updated_at = ? WHERE id = ? AND state = 'queued'`)
      .run(now, id);
    return done.changes === 1;
  }

  private read(row: unknown): QueuedTask | undefined {
    const parsed = coreDb.row(this.db, 'tasks', Row, row as Record<string, unknown> | undefined);
    if (parsed === undefined) return undefined;
    return { ...parsed, spec: coreDb.json(this.db, 'tasks', TaskSpec, parsed.spec) };
  }
}

/** A task of this queue as the API gives it: one a host claimed says only where it went. */
export function queuedTaskInfo(task: QueuedTask): TaskInfo {
  return {
    id: task.id,
    spec: task.spec,
    state: task.state === 'cancelled' ? 'cancelled' : 'queued',
    host: null,
    session: null,
    created_at: task.created_at,
    claimed_at: null,
    updated_at: task.updated_at,
    finished_at: task.state === 'cancelled' ? task.updated_at : null,
    detail: null,
    reason: task.reason,
    exit_code: null,
  };
}
