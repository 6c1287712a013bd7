import {
  Emitter,
  FINAL_TASK_STATES,
  HangarError,
  NewTaskSpec,
  parseOrThrow,
  toHangarError,
  type Disposable,
  type HostFailure,
  type TaskInfo,
  type TaskSpecInput,
} from '@hangar/shared';
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { HostConnection } from '../connection/host-connection.js';
import { askEachHost, listOnHosts } from '../hosts/fan-out.js';
import { TaskQueue, queuedTaskInfo } from './task-queue.js';

/** What the tasks capability needs of a host connection (HostConnection, or a test's own). */
export type TaskLink = Pick<HostConnection, 'call' | 'link'>;

export interface HostTasks {
  host: string;
  tasks: TaskInfo[];
  /** Older tasks the host left out of its listing (its byte bound); 0 when it listed them all. */
  truncated: number;
  error: HostFailure | null;
}

/** A host that does not answer within this is passed over (its reason: it cannot be reached). */
const LINK_PATIENCE_MS = 5000;
/** A claim that failed so may have been made on the host: not offered to the next host this round. */
const MAY_HAVE_CLAIMED = new Set(['E_UNAVAILABLE', 'E_TIMEOUT', 'E_HOST_UNREACHABLE', 'E_INTERNAL']);
/** A running core tries the queue again this often, besides when a host comes online or ends a task. */
const RETRY_EVERY_MS = 30_000;

/**
 * Agent tasks: this computer's queue (task-queue.ts) and the hosts that claim from it. A task is
 * offered to the hosts in name order (one named with --host: only it), first to accept wins; the
 * host's answer says why not (a need it lacks, its limit), and those answers are the reason a task
 * stays queued. Once claimed, the host keeps the task's record and this computer asks it.
 */
export class TasksApi implements Disposable {
  private readonly queue: TaskQueue;
  private readonly updatedEmitter = new Emitter<TaskInfo>();
  /** A task changed: queued here (host null), or on a host (the host's name filled in). */
  readonly onUpdated = this.updatedEmitter.event;
  private retryTimer: NodeJS.Timeout | undefined;
  private dispatching: Promise<void> | undefined;
  private dispatchAgain = false;

  constructor(
    db: Database.Database,
    private readonly connectionFor: (host: string) => TaskLink,
    private readonly hostNames: () => string[],
    private readonly logger: Logger,
  ) {
    this.queue = new TaskQueue(db);
  }

  /** Queues the task and offers it to the hosts now; answers with where it went, or why it waits. */
  async add(spec: TaskSpecInput, host?: string): Promise<TaskInfo> {
    const checked = parseOrThrow(NewTaskSpec, spec, 'task');
    if (host !== undefined && !this.hostNames().includes(host)) {
      throw new HangarError(
        'E_HOST_NOT_FOUND',
        `no host named "${host}"; known hosts: ${this.hostNames().join(', ') || 'none (add one with: hangar hosts add)'}`,
      );
    }
    const id = `t-${randomBytes(8).toString('hex')}`;
    const queued = this.queue.add(id, checked, host, Date.now());
    this.updatedEmitter.fire(queuedTaskInfo(queued));
    return (await this.offer(id)) ?? queuedTaskInfo(this.queue.get(id)!);
  }

  /** This computer's queued tasks and every host's tasks (a host that cannot be reached is a value). */
  async list(): Promise<{ queued: TaskInfo[]; hosts: HostTasks[] }> {
    const queued = this.queue.queued().map(queuedTaskInfo);
    const hosts = await listOnHosts(
      this.sortedHosts(),
      undefined,
      async (host) => {
        const listed = await this.connectionFor(host).call('task.list', {});
        return { tasks: listed.tasks.map(on(host)), truncated: listed.truncated ?? 0 };
      },
      { tasks: [] as TaskInfo[], truncated: 0 },
    );
    return { queued, hosts };
  }

  async get(id: string, host?: string): Promise<TaskInfo> {
    const known = this.queue.get(id);
    if (known && known.state !== 'claimed') return queuedTaskInfo(known);
    const where = host ?? known?.host ?? undefined;
    if (where !== undefined) return on(where)(await this.connectionFor(where).call('task.get', { id }));
    // Queued on another computer: ask every host.
    const answers = await askEachHost(this.sortedHosts(), (h) => this.connectionFor(h).call('task.get', { id }));
    const found = answers.find((a) => a.ok);
    if (found?.ok) return on(found.host)(found.value);
    throw notFound(
      id,
      answers.filter((a) => !a.ok && a.error.code !== 'E_TASK_NOT_FOUND').map((a) => a.host),
    );
  }

  async cancel(id: string, host?: string): Promise<TaskInfo> {
    if (this.queue.cancel(id, Date.now())) {
      const cancelled = queuedTaskInfo(this.queue.get(id)!);
      this.updatedEmitter.fire(cancelled);
      return cancelled;
    }
    const task = await this.get(id, host);
    if (task.host === null) return task; // cancelled already
    const after = on(task.host)(await this.connectionFor(task.host).call('task.cancel', { id }));
    this.updatedEmitter.fire(after);
    return after;
  }

  /** A host said a task of its changed: passed on, and a task that ended makes room for the queue. */
  hostReported(host: string, task: TaskInfo): void {
    this.updatedEmitter.fire(on(host)(task));
    if (FINAL_TASK_STATES.includes(task.state)) this.dispatchQueued();
  }

  /**
   * Offers every queued task again (a host came online, one ended a task, or the timer), one round
   * at a time; a call while one runs makes one more round after it.
   */
  dispatchQueued(): void {
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = (async () => {
      do {
        this.dispatchAgain = false;
        for (const task of this.queue.queued()) await this.offer(task.id);
      } while (this.dispatchAgain);
    })()
      .catch((error: unknown) => this.logger.warn({ err: toHangarError(error) }, 'could not offer queued tasks'))
      .finally(() => (this.dispatching = undefined));
  }

  /** A running core (a window, hangar up/ui) keeps offering what waits; the hangar command's does not. */
  keepDispatching(): void {
    if (this.retryTimer) return;
    this.retryTimer = setInterval(() => this.dispatchQueued(), RETRY_EVERY_MS);
    this.retryTimer.unref();
    this.dispatchQueued();
  }

  dispose(): void {
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.updatedEmitter.dispose();
  }

  /**
   * Offers one queued task to the hosts that may take it, in order; the first to accept has it. A
   * host that cannot be reached or refuses is passed over, its reason kept. Undefined when no host
   * took it (or another core is offering it right now).
   */
  private async offer(id: string): Promise<TaskInfo | undefined> {
    if (!this.queue.lease(id, Date.now())) return undefined;
    const task = this.queue.get(id)!;
    // A host asked before without an answer (lost, or this computer's core died) may have the task:
    // it is asked first, and while it cannot be, no other host is (one task never runs on two).
    const asked = task.host;
    const hosts = task.host_pin !== null ? [task.host_pin] : this.sortedHosts();
    if (asked !== null && hosts.includes(asked)) hosts.sort((a, b) => Number(b === asked) - Number(a === asked));
    const refusals: string[] = [];
    for (const host of hosts) {
      let claimed: TaskInfo;
      try {
        await withPatience(this.connectionFor(host).link(), host);
      } catch (error) {
        const why = `${host}: cannot be reached (${toHangarError(error).message})`;
        if (host === asked) {
          this.queue.stillQueued(id, `${why}; it may have taken the task, so no other host is asked`, Date.now());
          this.updatedEmitter.fire(queuedTaskInfo(this.queue.get(id)!));
          return undefined;
        }
        refusals.push(why);
        continue;
      }
      this.queue.asking(id, host);
      try {
        // Answered by a linked host: a lost answer is asked again next round, and the claim is
        // idempotent, so the same host answers with the same task rather than a second host running it.
        claimed = await this.connectionFor(host).call('task.claim', {
          id,
          spec: task.spec,
          created_at: task.created_at,
        });
      } catch (error) {
        const failure = toHangarError(error);
        if (MAY_HAVE_CLAIMED.has(failure.code)) {
          // The link went while it answered: it may have the task. No later host is asked this
          // round; the next asks this one first (asking()), which answers with the task if it has it.
          this.queue.stillQueued(id, `${host}: ${failure.message}`, Date.now());
          this.logger.warn({ task: id, host, err: failure }, 'a host did not answer a claim');
          this.updatedEmitter.fire(queuedTaskInfo(this.queue.get(id)!));
          return undefined;
        }
        this.queue.asking(id, null); // it answered: it does not have the task
        const why = /unknown method "task\.claim"/.test(failure.message)
          ? 'its agent is older than agent tasks (update it: hangar-agent update)'
          : failure.message;
        refusals.push(`${host}: ${why}`);
        continue;
      }
      const info = on(host)(claimed);
      if (!this.queue.claimed(id, host, Date.now())) {
        // Cancelled here while the host was taking it: it is cancelled there too.
        await this.connectionFor(host)
          .call('task.cancel', { id })
          .catch((error: unknown) =>
            this.logger.warn(
              { task: id, host, err: toHangarError(error) },
              'could not cancel a task cancelled while claimed',
            ),
          );
        return undefined;
      }
      this.logger.info({ task: id, host }, 'task claimed');
      this.updatedEmitter.fire(info);
      return info;
    }
    const reason =
      hosts.length === 0
        ? 'no hosts are paired; add one with: hangar hosts add <name> <address> --code <code>'
        : `no host can take it now: ${refusals.join('; ')}`;
    this.queue.stillQueued(id, reason, Date.now());
    this.updatedEmitter.fire(queuedTaskInfo(this.queue.get(id)!));
    return undefined;
  }

  private sortedHosts(): string[] {
    return [...this.hostNames()].sort();
  }
}

function on(host: string): (task: TaskInfo) => TaskInfo {
  return (task) => ({ ...task, host });
}

function notFound(id: string, unasked: string[]): HangarError {
  const also = unasked.length > 0 ? ` (${unasked.join(', ')} could not be asked)` : '';
  return new HangarError(
    'E_TASK_NOT_FOUND',
    `no task ${id} here or on any host${also}; list them with: hangar task ls`,
    {
      id,
    },
  );
}

async function withPatience<T>(promise: Promise<T>, host: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HangarError('E_HOST_UNREACHABLE', `no answer from ${host} within ${LINK_PATIENCE_MS / 1000} s`)),
      LINK_PATIENCE_MS,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
